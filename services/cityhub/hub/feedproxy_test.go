package hub_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// feedProxy is a TCP proxy in front of a hub that can hold back what the
// hub sends on live-feed connections (the websocket of GET /v1/live),
// while every other request passes. A test uses it to make a page's view
// of a case go stale on purpose: real sockets, no hook in the page.
type feedProxy struct {
	t  *testing.T
	ln net.Listener

	mu     sync.Mutex
	cond   *sync.Cond
	target string
	held   bool
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newFeedProxy(t *testing.T) *feedProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &feedProxy{t: t, ln: ln, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// URL is the proxy's base URL, the origin of pages loaded through it.
func (p *feedProxy) URL() string { return "http://" + p.ln.Addr().String() }

// forwardTo points the proxy at the hub at url.
func (p *feedProxy) forwardTo(url string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = strings.TrimPrefix(url, "http://")
}

// hold stops passing what the hub sends on live-feed connections; it is
// kept, in order, until release.
func (p *feedProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = true
}

func (p *feedProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = false
	p.cond.Broadcast()
}

func (p *feedProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.held = false
	p.cond.Broadcast()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

func (p *feedProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *feedProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			continue
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// serve forwards one connection. The first request on it says whether it
// is a live-feed connection: browsers open a socket of its own for every
// websocket.
func (p *feedProxy) serve(client net.Conn) {
	defer client.Close()
	br := bufio.NewReaderSize(client, 16<<10)
	head, err := peekHead(br)
	if err != nil {
		return
	}
	live := bytes.HasPrefix(head, []byte("GET /v1/live"))
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	server, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer server.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(server, br)
		if tc, ok := server.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	p.pass(client, server, live)
	client.Close()
	server.Close()
	<-done
}

// peekHead returns the request line of the first request without
// consuming it.
func peekHead(br *bufio.Reader) ([]byte, error) {
	if _, err := br.Peek(1); err != nil {
		return nil, err
	}
	for {
		b, _ := br.Peek(br.Buffered())
		if i := bytes.IndexByte(b, '\n'); i >= 0 || len(b) == br.Size() {
			return b, nil
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return nil, err
		}
	}
}

// pass copies what the hub sends to the client, waiting while a live-feed
// connection is held.
func (p *feedProxy) pass(client, server net.Conn, live bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if live {
				p.mu.Lock()
				for p.held && !p.closed {
					p.cond.Wait()
				}
				p.mu.Unlock()
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
