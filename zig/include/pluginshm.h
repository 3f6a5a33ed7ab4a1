/*
 * libpluginshm: shared-memory channels between processes.
 *
 * Every call is thread-safe with respect to other handles. Calls that return
 * int32_t/int64_t return a value >= 0 on success and a negated pshm_status on
 * failure. A handle is a non-negative integer naming one open segment in this process; a closed handle stays
 * invalid (its slot number carries a reuse count), so closing twice fails with PSHM_INVALID_ARGUMENT.
 *
 * A C or Zig peer typically: pshm_attach(name, token) -> loop of
 * pshm_receive / pshm_send -> pshm_close. JavaScript peers map the segment with
 * pshm_base/pshm_size and drive the rings in place; see src/transport/_ring.ts.
 *
 * Windows: segments are named file mappings; waiting polls every 1 ms (no
 * cross-process address wait exists there). macOS: __ulock with the shared
 * flag. Linux: futex(2) without FUTEX_PRIVATE_FLAG.
 */
#ifndef PLUGINSHM_H
#define PLUGINSHM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* enum pshm_status, enum pshm_wake_reason and the layout constants
 * (PSHM_TOKEN_BYTES, PSHM_NAME_BYTES_MAX, offsets) are generated from the Zig
 * definitions by `zig build gen`. */
#include "pluginshm_generated.h"

/* The ABI version; plugin-shm's TypeScript refuses a library whose differs. */
uint32_t pshm_abi_version(void);

/* A layout constant or offset by id (see zig/layout.zig Field), for tests. */
int64_t pshm_layout(uint32_t field);

/* Creates a segment with two rings of ring_bytes (power of two, 4 KiB..1 GiB)
 * as side 0. Writes the NUL-padded name to name_out (capacity >= 64) and the
 * one-time token to token_out (32 bytes). Returns the handle. */
int32_t pshm_create(uint32_t ring_bytes, uint8_t *name_out, uint32_t name_capacity, uint8_t *token_out);

/* Attaches as side 1 with the creator's token; unlinks the name so nothing
 * else can attach. Returns the handle. */
int32_t pshm_attach(const uint8_t *name, uint32_t name_len, const uint8_t *token, uint32_t token_len);

/* The mapped segment and its size in bytes. */
void *pshm_base(int32_t handle);
uint64_t pshm_size(int32_t handle);
/* 0 for the creator, 1 for the attacher. */
int32_t pshm_side(int32_t handle);

/* Marks this side closed, wakes the peer, unlinks and unmaps. Idempotent. */
int32_t pshm_close(int32_t handle);
/* Removes the name (the mapping stays usable). */
int32_t pshm_unlink(int32_t handle);

/* Rings side's doorbell and wakes it if parked. */
int32_t pshm_wake(int32_t handle, uint32_t side);
/* 1 while the peer process is alive (a zombie counts as dead), else 0. */
int32_t pshm_peer_alive(int32_t handle);
int32_t pshm_process_alive(uint32_t pid);

/* Starts a waiter thread that calls callback(context, reason) when armed and
 * the doorbell changes (reason 1), the peer closes (2) or dies (3); while not
 * armed it still reports a dead peer once. After pshm_close its last call has
 * reason 4 (exited): until then the callback must stay callable. */
typedef void (*pshm_callback)(uint32_t context, uint32_t reason);
int32_t pshm_waiter_start(int32_t handle, pshm_callback callback, uint32_t context);
/* Arms the waiter for one callback once the doorbell differs from expected. */
int32_t pshm_waiter_arm(int32_t handle, uint32_t expected);
/* How often the waiter checks on its own that the peer lives, in ms (1 to 3600000; default 1000). */
int32_t pshm_waiter_liveness(int32_t handle, uint32_t ms);

/* Removes segments whose creator and attacher are both dead; returns count. */
uint32_t pshm_sweep(void);
uint32_t pshm_pid(void);
/* sched_yield(): lets a spinning caller give way to other runnable threads. */
void pshm_yield(void);

/* Blocks this thread until the handle's doorbell differs from expected, for at most timeout_us (1 to 100000):
 * 1 when it changed, 0 on the timeout. For a JavaScript side with nothing else to do (no thread hop). */
int32_t pshm_park_blocking(int32_t handle, uint32_t expected, uint32_t timeout_us);

/* Blocking send of one message (split into frames as needed). */
int32_t pshm_send(int32_t handle, const uint8_t *message, uint64_t message_len, uint32_t timeout_ms);
/* Blocking receive of one message into buffer; returns its length. */
int64_t pshm_receive(int32_t handle, uint8_t *buffer, uint64_t buffer_capacity, uint32_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
