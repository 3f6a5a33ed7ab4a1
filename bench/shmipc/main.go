// shmipc-go beside plugin-shm's channel: the same ping-pong and one-way
// throughput at 64 B, 4 KiB, 64 KiB and 1 MiB, over shmipc-go (the roadmap's
// fork base, cloudwego/shmipc-go) and over a plain unix socket, each between
// two processes (this program re-executes itself as the echo peer).
//
//	go run . [--json] [--quick]
//
// Output: the table of bench/_stats.ts, or with --json one object per line
// with the keys of bench/channel_bench.ts --json (bench, runtime, transport,
// size, p50_us, p99_us, p999_us, msgs_per_s, bytes_per_s, note), which
// bench/side_by_side.ts puts in one table with the channel's rows.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/cloudwego/shmipc-go"
)

var sizes = []int{64, 4 << 10, 64 << 10, 1 << 20}

// A peer connection: send one message of n bytes, receive one of n bytes.
type conn interface {
	send(msg []byte) error
	recv(n int) error
	close()
}

type unixConn struct {
	c   net.Conn
	buf []byte
}

func (u *unixConn) send(msg []byte) error { _, err := u.c.Write(msg); return err }
func (u *unixConn) recv(n int) error {
	if cap(u.buf) < n {
		u.buf = make([]byte, n)
	}
	_, err := io.ReadFull(u.c, u.buf[:n])
	return err
}
func (u *unixConn) close() { u.c.Close() }

type shmConn struct {
	stream *shmipc.Stream
	closer func()
}

func (s *shmConn) send(msg []byte) error {
	if _, err := s.stream.BufferWriter().WriteBytes(msg); err != nil {
		return err
	}
	for {
		err := s.stream.Flush(false)
		if err == shmipc.ErrQueueFull {
			time.Sleep(time.Microsecond)
			continue
		}
		return err
	}
}
func (s *shmConn) recv(n int) error {
	_, err := s.stream.BufferReader().ReadBytes(n)
	s.stream.ReleaseReadAndReuse()
	return err
}
func (s *shmConn) close() { s.closer() }

func shmConfig(size int) *shmipc.Config {
	c := shmipc.DefaultConfig()
	c.MemMapType = shmipc.MemMapTypeMemFd
	c.ShareMemoryBufferCap = 64 << 20
	c.QueueCap = 65535
	c.ShareMemoryPathPrefix = fmt.Sprintf("/dev/shm/pshm-bench-shmipc-%d", os.Getpid())
	slice := uint32(size + 64)
	c.BufferSliceSizes = []*shmipc.SizePercentPair{{Size: slice, Percent: 100}}
	return c
}

// The peer. "pingpong": answers each message of `size` bytes with one of the same size.
// "count": reads an 8-byte count, then that many messages, and answers once with 8 bytes.
func serve(mode, transport, path string, size int) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	must(err)
	fmt.Println("ready")
	raw, err := ln.Accept()
	must(err)
	ln.Close()
	var c conn
	if transport == "unix" {
		c = &unixConn{c: raw}
	} else {
		session, err := shmipc.Server(raw, shmConfig(size))
		must(err)
		stream, err := session.AcceptStream()
		must(err)
		c = &shmConn{stream: stream, closer: func() { stream.Close(); session.Close() }}
	}
	defer c.close()
	reply := make([]byte, size)
	if mode == "pingpong" {
		for c.recv(size) == nil && c.send(reply) == nil {
		}
		return
	}
	for recvHeader(c) == nil {
		count := binary.LittleEndian.Uint64(lastHeader(c))
		for i := uint64(0); i < count; i++ {
			if c.recv(size) != nil {
				return
			}
		}
		if c.send(make([]byte, 8)) != nil {
			return
		}
	}
}

// The header the last recv(8) read (unix keeps its buffer; shmipc reads into a fresh slice).
var shmHeader []byte

func lastHeader(c conn) []byte {
	if u, ok := c.(*unixConn); ok {
		return u.buf[:8]
	}
	return shmHeader
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "shmipc bench:", err)
		os.Exit(1)
	}
}

type row struct {
	Bench     string   `json:"bench"`
	Runtime   string   `json:"runtime"`
	Transport string   `json:"transport"`
	Size      int      `json:"size"`
	P50       *float64 `json:"p50_us"`
	P99       *float64 `json:"p99_us"`
	P999      *float64 `json:"p999_us"`
	MsgsPerS  *float64 `json:"msgs_per_s"`
	BytesPerS *float64 `json:"bytes_per_s"`
	Note      string   `json:"note"`
}

func percentile(sorted []float64, p float64) float64 {
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

func f(v float64) *float64 { return &v }

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		size, _ := strconv.Atoi(os.Args[5])
		serve(os.Args[2], os.Args[3], os.Args[4], size)
		return
	}
	asJSON := flag.Bool("json", false, "one JSON object per line")
	quick := flag.Bool("quick", false, "about 10x fewer iterations")
	flag.Parse()
	var rows []row
	for _, transport := range []string{"shmipc", "unix"} {
		for _, size := range sizes {
			fmt.Fprintf(os.Stderr, "… %s %d B\n", transport, size)
			rows = append(rows, measure(transport, size, *quick)...)
		}
	}
	for _, r := range rows {
		if *asJSON {
			b, _ := json.Marshal(r)
			fmt.Println(string(b))
		}
	}
	if !*asJSON {
		fmt.Printf("%-20s %-8s %-10s %8s %10s %10s %10s %12s %s\n", "bench", "runtime", "transport", "size", "p50 µs", "p99 µs", "p99.9 µs", "per s", "note")
		for _, r := range rows {
			num := func(v *float64) string {
				if v == nil {
					return "—"
				}
				return strconv.FormatFloat(*v, 'f', 2, 64)
			}
			fmt.Printf("%-20s %-8s %-10s %8d %10s %10s %10s %12s %s\n", r.Bench, r.Runtime, r.Transport, r.Size, num(r.P50), num(r.P99), num(r.P999), num(r.MsgsPerS), r.Note)
		}
	}
}

// Starts a peer in `mode` and connects to it.
func connect(mode, transport string, size int) (conn, func()) {
	dir, err := os.MkdirTemp("", "pshm-shmipc-")
	must(err)
	path := filepath.Join(dir, "peer.sock")
	self, err := os.Executable()
	must(err)
	peer := exec.Command(self, "serve", mode, transport, path, strconv.Itoa(size))
	peer.Stderr = os.Stderr
	out, err := peer.StdoutPipe()
	must(err)
	must(peer.Start())
	ready := make([]byte, 6)
	_, err = io.ReadFull(out, ready)
	must(err)
	var c conn
	if transport == "unix" {
		raw, err := net.Dial("unix", path)
		must(err)
		c = &unixConn{c: raw}
	} else {
		config := shmipc.DefaultSessionManagerConfig()
		config.Config = shmConfig(size)
		config.Network = "unix"
		config.Address = path
		config.SessionNum = 1
		manager, err := shmipc.NewSessionManager(config)
		must(err)
		stream, err := manager.GetStream()
		must(err)
		c = &shmConn{stream: stream, closer: func() { manager.PutBack(stream); manager.Close() }}
	}
	return c, func() {
		c.close()
		peer.Process.Kill()
		peer.Wait()
		os.RemoveAll(dir)
	}
}

func measure(transport string, size int, quick bool) []row {
	msg := make([]byte, size)
	// Ping-pong: each round trip timed alone, after a warm-up.
	rounds := 20000
	if size >= 64<<10 {
		rounds = 2000
	}
	if quick {
		rounds /= 10
	}
	c, done := connect("pingpong", transport, size)
	samples := make([]float64, 0, rounds)
	for i := 0; i < rounds+rounds/10; i++ {
		start := time.Now()
		must(c.send(msg))
		must(c.recv(size))
		if i >= rounds/10 {
			samples = append(samples, float64(time.Since(start).Nanoseconds())/1000)
		}
	}
	done()
	sort.Float64s(samples)
	var total float64
	for _, s := range samples {
		total += s
	}
	rtt := row{Bench: "channel.rtt", Runtime: "go", Transport: transport, Size: size,
		P50: f(percentile(samples, 0.5)), P99: f(percentile(samples, 0.99)), P999: f(percentile(samples, 0.999)),
		MsgsPerS: f(float64(len(samples)) / (total / 1e6)), Note: "ping-pong, one stream"}
	// One-way throughput: `count` messages, one answer at the end.
	count := 200000
	if size >= 64<<10 {
		count = 5000
	}
	if size >= 1<<20 {
		count = 500
	}
	if quick {
		count /= 10
	}
	c, done = connect("count", transport, size)
	defer done()
	header := make([]byte, 8)
	binary.LittleEndian.PutUint64(header, uint64(count))
	start := time.Now()
	must(c.send(header))
	for i := 0; i < count; i++ {
		must(c.send(msg))
	}
	must(recvHeader(c))
	seconds := time.Since(start).Seconds()
	tput := row{Bench: "channel.throughput", Runtime: "go", Transport: transport, Size: size,
		MsgsPerS: f(float64(count) / seconds), BytesPerS: f(float64(count*size) / seconds), Note: "one-way, flush each"}
	return []row{rtt, tput}
}

func recvHeader(c conn) error {
	if s, ok := c.(*shmConn); ok {
		b, err := s.stream.BufferReader().ReadBytes(8)
		if err == nil {
			shmHeader = append(shmHeader[:0], b...)
		}
		s.stream.ReleaseReadAndReuse()
		return err
	}
	return c.recv(8)
}
