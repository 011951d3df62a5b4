// SPDX-License-Identifier: MIT
// Wire-compatibility check against containerd's own ttrpc (Debian's
// golang-github-containerd-ttrpc-dev): `interop client SOCK` drives ferry's C server with the
// Go client; `interop server SOCK` serves ferry.test.Echo with the Go server for ferry's C
// client. Messages are tests/rpc/echo_test.proto, encoded by hand so no generated Go is needed.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// raw carries already-encoded protobuf bytes through ttrpc's gogo codec.
type raw struct{ b []byte }

func (r *raw) Reset()                   { r.b = nil }
func (r *raw) String() string           { return fmt.Sprintf("%x", r.b) }
func (r *raw) ProtoMessage()            {}
func (r *raw) Marshal() ([]byte, error) { return r.b, nil }
func (r *raw) Unmarshal(b []byte) error { r.b = append([]byte(nil), b...); return nil }

func putVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func putBytes(b []byte, field int, s []byte) []byte {
	b = putVarint(b, uint64(field<<3|2))
	b = putVarint(b, uint64(len(s)))
	return append(b, s...)
}

func putUint(b []byte, field int, v uint64) []byte {
	b = putVarint(b, uint64(field<<3))
	return putVarint(b, v)
}

// fields decodes one message level: field number -> raw value (bytes or varint).
type fields struct {
	bytes map[int][]byte
	ints  map[int]uint64
}

func decode(b []byte) (fields, error) {
	f := fields{bytes: map[int][]byte{}, ints: map[int]uint64{}}
	varint := func() (uint64, error) {
		var v uint64
		for s := uint(0); s < 64; s += 7 {
			if len(b) == 0 {
				return 0, errors.New("truncated varint")
			}
			c := b[0]
			b = b[1:]
			v |= uint64(c&0x7f) << s
			if c < 0x80 {
				return v, nil
			}
		}
		return 0, errors.New("long varint")
	}
	for len(b) > 0 {
		key, err := varint()
		if err != nil {
			return f, err
		}
		switch key & 7 {
		case 0:
			v, err := varint()
			if err != nil {
				return f, err
			}
			f.ints[int(key>>3)] = v
		case 2:
			n, err := varint()
			if err != nil || uint64(len(b)) < n {
				return f, errors.New("truncated bytes")
			}
			f.bytes[int(key>>3)] = b[:n]
			b = b[n:]
		default:
			return f, fmt.Errorf("wire type %d not expected", key&7)
		}
	}
	return f, nil
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "interop: FAIL: "+format+"\n", a...)
	os.Exit(1)
}

func ok(format string, a ...interface{}) {
	fmt.Printf("interop: ok: "+format+"\n", a...)
}

func echoReq(text string, replyBytes uint64, delayMs uint64) *raw {
	b := putBytes(nil, 1, []byte(text))
	if delayMs > 0 {
		b = putUint(b, 3, delayMs)
	}
	if replyBytes > 0 {
		b = putUint(b, 4, replyBytes)
	}
	return &raw{b}
}

// The Go client against ferry's C server.
func runClient(path string) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		fail("dial %s: %v", path, err)
	}
	c := ttrpc.NewClient(conn)
	defer c.Close()

	// unary call with metadata and a deadline: the server echoes both back
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	md := ttrpc.MD{}
	md.Set("x-test", "from-go")
	ctx = ttrpc.WithMetadata(ctx, md)
	var resp raw
	if err := c.Call(ctx, "ferry.test.Echo", "Echo", echoReq("hello from go", 0, 0), &resp); err != nil {
		fail("Echo: %v", err)
	}
	cancel()
	f, err := decode(resp.b)
	if err != nil {
		fail("Echo reply does not decode: %v", err)
	}
	if string(f.bytes[1]) != "hello from go" {
		fail("Echo text %q", f.bytes[1])
	}
	if string(f.bytes[3]) != "from-go" {
		fail("metadata x-test came back as %q", f.bytes[3])
	}
	left := int64(f.ints[4])
	if left <= 0 || left > 5000 {
		fail("deadline left %d ms, want (0, 5000]", left)
	}
	ok("unary Echo, metadata and timeout cross (deadline left %d ms)", left)

	// a large reply in one frame
	if err := c.Call(context.Background(), "ferry.test.Echo", "Echo", echoReq("big", 1<<20, 0), &resp); err != nil {
		fail("Echo 1 MiB: %v", err)
	}
	if f, _ = decode(resp.b); len(f.bytes[2]) != 1<<20 {
		fail("1 MiB reply has %d bytes", len(f.bytes[2]))
	}
	ok("1 MiB reply")

	// errors arrive as google.rpc.Status codes
	err = c.Call(context.Background(), "ferry.test.Echo", "Unimpl", echoReq("x", 0, 0), &resp)
	if status.Code(err) != codes.Unimplemented {
		fail("Unimpl: want Unimplemented, got %v", err)
	}
	err = c.Call(context.Background(), "ferry.test.Nope", "Echo", echoReq("x", 0, 0), &resp)
	if status.Code(err) != codes.Unimplemented {
		fail("unknown service: want Unimplemented, got %v", err)
	}
	ok("unknown method and service answer UNIMPLEMENTED")

	// concurrent calls on one connection complete out of order by their delays
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func(i int) {
			var r raw
			text := fmt.Sprintf("call-%d", i)
			if err := c.Call(context.Background(), "ferry.test.Echo", "Echo",
				echoReq(text, 0, uint64((8-i)*5)), &r); err != nil {
				errs <- err
				return
			}
			if f, _ := decode(r.b); string(f.bytes[1]) != text {
				errs <- fmt.Errorf("call %d got %q", i, f.bytes[1])
				return
			}
			errs <- nil
		}(i)
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			fail("concurrent: %v", err)
		}
	}
	ok("8 concurrent calls on one connection")

	// the server still answers after a client-side timeout on another call
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	err = c.Call(ctx, "ferry.test.Echo", "Echo", echoReq("slow", 0, 500), &resp)
	cancel()
	if status.Code(err) != codes.DeadlineExceeded && !errors.Is(err, context.DeadlineExceeded) {
		fail("slow call: want a deadline error, got %v", err)
	}
	if err := c.Call(context.Background(), "ferry.test.Echo", "Echo", echoReq("after", 0, 0), &resp); err != nil {
		fail("Echo after timeout: %v", err)
	}
	ok("a timed-out call leaves the connection usable")
}

// The Go server for ferry's C client.
func runServer(path string) {
	s, err := ttrpc.NewServer()
	if err != nil {
		fail("NewServer: %v", err)
	}
	s.Register("ferry.test.Echo", map[string]ttrpc.Method{
		"Echo": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req raw
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			f, err := decode(req.b)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "bad request: %v", err)
			}
			text := string(f.bytes[1])
			if strings.HasPrefix(text, "fail:") {
				return nil, status.Errorf(codes.FailedPrecondition, "%s", text[5:])
			}
			mdv, _ := ttrpc.GetMetadataValue(ctx, "x-test")
			b := putBytes(nil, 1, []byte("go:"+text))
			b = putBytes(b, 3, []byte(mdv))
			if dl, ok := ctx.Deadline(); ok {
				b = putUint(b, 4, uint64(time.Until(dl).Milliseconds()))
			}
			return &raw{b}, nil
		},
	})
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		fail("listen %s: %v", path, err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		s.Close()
	}()
	fmt.Println("ready")
	if err := s.Serve(context.Background(), l); err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
		fail("serve: %v", err)
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: interop client|server SOCKET")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "client":
		runClient(os.Args[2])
	case "server":
		runServer(os.Args[2])
	default:
		fail("unknown mode %q", os.Args[1])
	}
}
