/*
 * A C peer built only against include/pluginshm.h: attaches to the segment
 * named in argv[1] with the hex token in argv[2] and echoes every message back
 * until the other side closes. Exits 0 on a clean close, 1 on any error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pluginshm.h"

static int unhex(const char *text, uint8_t *out, size_t out_len) {
  if (strlen(text) != out_len * 2) return -1;
  for (size_t i = 0; i < out_len; i++) {
    unsigned value;
    if (sscanf(text + 2 * i, "%2x", &value) != 1) return -1;
    out[i] = (uint8_t)value;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: c_peer <segment-name> <token-hex>\n");
    return 1;
  }
  uint8_t token[PSHM_TOKEN_BYTES];
  if (unhex(argv[2], token, sizeof token) != 0) {
    fprintf(stderr, "c_peer: token must be %d hex bytes\n", PSHM_TOKEN_BYTES);
    return 1;
  }
  int32_t handle = pshm_attach((const uint8_t *)argv[1], (uint32_t)strlen(argv[1]), token, sizeof token);
  if (handle < 0) {
    fprintf(stderr, "c_peer: attach failed with status %d\n", -handle);
    return 1;
  }
  const uint64_t capacity = 16u << 20;
  uint8_t *buffer = malloc(capacity);
  int status = 1;
  for (;;) {
    int64_t n = pshm_receive(handle, buffer, capacity, 30000);
    if (n == -PSHM_CLOSED) {
      status = 0;
      break;
    }
    if (n < 0) {
      fprintf(stderr, "c_peer: receive failed with status %d\n", (int)-n);
      break;
    }
    int32_t rc = pshm_send(handle, buffer, (uint64_t)n, 30000);
    if (rc < 0) {
      fprintf(stderr, "c_peer: send failed with status %d\n", -rc);
      break;
    }
  }
  free(buffer);
  pshm_close(handle);
  return status;
}
