package intake_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/intake"
)

// TestListenerCap: with many clients connecting at once from one address,
// at most Max connections are handed out at any time, the rest are
// refused (closed at once), and closing a connection frees its slot.
func TestListenerCap(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	ln := &intake.Listener{Listener: raw, Max: 3, Refused: func(net.Addr) { refused.Add(1) }}
	defer ln.Close()
	accepted := make(chan net.Conn, 20)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if n := ln.Open("127.0.0.1"); n > 3 {
				t.Errorf("%d connections open from one address", n)
			}
			accepted <- c
		}
	}()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			c, err := net.Dial("tcp", raw.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { c.Close() })
		})
	}
	wg.Wait()
	var held []net.Conn
	for range 3 {
		select {
		case c := <-accepted:
			held = append(held, c)
		case <-time.After(10 * time.Second):
			t.Fatal("fewer than Max connections accepted")
		}
	}
	for deadline := time.Now().Add(10 * time.Second); refused.Load() < 7; {
		if time.Now().After(deadline) {
			t.Fatalf("refused %d connections, want 7", refused.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ln.Open("127.0.0.1") != 3 {
		t.Fatalf("open = %d, want 3", ln.Open("127.0.0.1"))
	}
	held[0].Close()
	held[0].Close() // twice frees one slot only
	if n := ln.Open("127.0.0.1"); n != 2 {
		t.Fatalf("open after a close = %d, want 2", n)
	}
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case a := <-accepted:
		defer a.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("a freed slot was not reused")
	}
}
