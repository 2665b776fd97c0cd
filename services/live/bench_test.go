package live

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/platform/view"
)

// The benchmarks compare the gateway with a raw gorilla hub, measured in
// the same run: one writer goroutine and a bounded channel per connection,
// the same frame, the same client readers over loopback sockets.
//
//	go test -run '^$' -bench 'Fanout|IdleConnection' -benchtime 200x ./services/live

// raiseFileLimit makes room for n more sockets, or skips b.
func raiseFileLimit(b *testing.B, n int) {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Skipf("cannot read RLIMIT_NOFILE: %v", err)
	}
	need := uint64(n + 512)
	if lim.Cur >= need {
		return
	}
	if lim.Max < need {
		b.Skipf("%d sockets need RLIMIT_NOFILE %d; the hard limit is %d (raise it with ulimit -Hn as root)", n, need, lim.Max)
	}
	lim.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Skipf("cannot raise RLIMIT_NOFILE to %d: %v", need, err)
	}
}

// benchCase is a case as a dispatcher's screen gets it, at version v.
func benchCase(v int64) *cityhubv1.Case {
	now := timestamppb.Now()
	return &cityhubv1.Case{
		Id: "xuhui-01jz2fzz005xj3pp84bme39v92", Version: v, Status: cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED,
		Title: "道路积水 35 cm, 天平路", Description: "Standing water deep enough to stall cars, reported by three hotline callers.",
		Severity: cityhubv1.Severity_SEVERITY_SEVERE, District: "xuhui", EventType: "waterlogging", Origin: "alert",
		Lead: "water-affairs", Assist: []string{"traffic-police"}, CreatedAt: now, UpdatedAt: now, DispatchedAt: now,
		Location: &cityhubv1.Location{Lon: 121.437, Lat: 31.196, District: "xuhui", Street: "tianping", Address: "天平路 200 号"},
		EventIds: []string{"01jz2fzz005xj3pp84bme39v92", "01jz2fzz005xj3pp84bme39v93", "01jz2fzz005xj3pp84bme39v94"},
	}
}

// readers counts frames read by a set of clients and signals when every
// client has read the current broadcast.
type readers struct {
	remaining atomic.Int64
	done      chan struct{}
	wg        sync.WaitGroup
}

func newReaders() *readers { return &readers{done: make(chan struct{}, 1)} }

// run reads ws until it fails; each frame counts towards the broadcast.
func (r *readers) run(ws *websocket.Conn) {
	r.wg.Go(func() {
		for {
			_, rd, err := ws.NextReader()
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, rd); err != nil {
				return
			}
			if r.remaining.Add(-1) == 0 {
				r.done <- struct{}{}
			}
		}
	})
}

// broadcast publishes iters times, one at a time, and returns the time
// each took until the last client had read it.
func (r *readers) broadcast(b *testing.B, n, iters int, publish func(i int)) []time.Duration {
	b.Helper()
	lat := make([]time.Duration, 0, iters)
	for i := range iters {
		r.remaining.Store(int64(n))
		t0 := time.Now()
		publish(i)
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			b.Fatalf("broadcast %d: %d of %d clients had not read it after 30s", i, r.remaining.Load(), n)
		}
		lat = append(lat, time.Since(t0))
	}
	return lat
}

func dialMany(b *testing.B, url string, h http.Header, n int) []*websocket.Conn {
	b.Helper()
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	out := make([]*websocket.Conn, 0, n)
	for range n {
		ws, resp, err := d.Dial(url, h)
		if err != nil {
			for _, c := range out {
				c.Close()
			}
			b.Fatalf("dial %d: %v (%s)", len(out), err, status(resp))
		}
		out = append(out, ws)
	}
	return out
}

// rawHub is the baseline: gorilla's chat-example hub with the gateway's
// queue length.
type rawHub struct {
	mu    sync.RWMutex
	conns map[chan []byte]struct{}
	wg    sync.WaitGroup
	up    websocket.Upgrader
}

func newRawHub() *rawHub { return &rawHub{conns: map[chan []byte]struct{}{}} }

func (h *rawHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := h.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	send := make(chan []byte, defaultQueue)
	h.mu.Lock()
	h.conns[send] = struct{}{}
	h.mu.Unlock()
	h.wg.Go(func() { // the writer
		for m := range send {
			_ = ws.SetWriteDeadline(time.Now().Add(defaultWrite))
			if ws.WriteMessage(websocket.TextMessage, m) != nil {
				break
			}
		}
		ws.Close()
	})
	ws.SetReadLimit(maxFrameBytes)
	for { // the reader, which also answers pings and closes
		if _, _, err := ws.ReadMessage(); err != nil {
			break
		}
	}
	h.mu.Lock()
	if _, ok := h.conns[send]; ok {
		delete(h.conns, send)
		close(send)
	}
	h.mu.Unlock()
}

func (h *rawHub) publish(m []byte) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.conns {
		select {
		case c <- m:
		default: // the baseline drops a frame a slow client cannot take
		}
	}
}

func (h *rawHub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}

// benchGateway is a gateway that takes connections without following
// Kafka: the benchmarks publish to it as its follower would.
func benchGateway(b *testing.B) (*Gateway, *httptest.Server, string) {
	b.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	v, _ := auth.NewVerifier(pub)
	g, err := New(Options{Brokers: []string{"127.0.0.1:1"}, Topics: stream.DefaultTopics(""), Verifier: v, Snapshot: &fakeSnapshot{}})
	if err != nil {
		b.Fatal(err)
	}
	g.open()
	mux := http.NewServeMux()
	g.Routes(mux)
	srv := httptest.NewServer(mux)
	tok, err := auth.NewSigner(priv).Sign(auth.Principal{Subject: "bench", Role: auth.RoleCommander}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return g, srv, tok
}

func wsURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func total(d []time.Duration) (sum time.Duration) {
	for _, x := range d {
		sum += x
	}
	return sum
}

// BenchmarkFanout broadcasts one case change at a time to N subscribed
// clients and times each until the last client has read it, on the
// gateway and on the raw hub.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	raiseFileLimit(b, 2*n)
	// The two hubs take turns in blocks, each with its own connections, so
	// that load from outside the benchmark falls on both alike.
	const blocks, warmup = 4, 10
	frame, err := encodeDelta(frameCase, 1, view.FromCase(benchCase(1)))
	if err != nil {
		b.Fatal(err)
	}
	var rawLat, gwLat []time.Duration
	iters := 0
	for blk := range blocks {
		k := b.N / blocks
		if blk < b.N%blocks {
			k++
		}
		iters += k
		rawLat = append(rawLat, rawBlock(b, n, warmup, k, frame)...)
		gwLat = append(gwLat, gatewayBlock(b, n, warmup, k)...)
	}

	gwRate := float64(n*iters) / total(gwLat).Seconds()
	rawRate := float64(n*iters) / total(rawLat).Seconds()
	b.ReportMetric(gwRate, "deliveries/s")
	b.ReportMetric(rawRate, "raw-deliveries/s")
	b.ReportMetric(gwRate/rawRate, "ratio")
	b.ReportMetric(float64(percentile(gwLat, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(percentile(rawLat, 0.99).Microseconds())/1000, "raw-p99-ms")
	b.ReportMetric(float64(percentile(gwLat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(rawLat, 0.5).Microseconds())/1000, "raw-p50-ms")
}

// rawBlock times iters broadcasts of frame to n clients of a raw hub.
func rawBlock(b *testing.B, n, warmup, iters int, frame []byte) []time.Duration {
	raw := newRawHub()
	srv := httptest.NewServer(raw)
	defer func() { srv.Close(); raw.wg.Wait() }()
	rr := newReaders()
	conns := dialMany(b, wsURL(srv, "/"), nil, n)
	defer func() {
		for _, ws := range conns {
			ws.Close()
		}
		rr.wg.Wait()
	}()
	for _, ws := range conns {
		rr.run(ws)
	}
	for raw.count() < n {
		time.Sleep(time.Millisecond)
	}
	rr.broadcast(b, n, warmup, func(int) { raw.publish(frame) })
	return rr.broadcast(b, n, iters, func(int) { raw.publish(frame) })
}

// gatewayBlock times iters changes, each handled as if read from Kafka,
// until n subscribed clients of a gateway have read them.
func gatewayBlock(b *testing.B, n, warmup, iters int) []time.Duration {
	g, srv, tok := benchGateway(b)
	defer srv.Close()
	msgs := make([]kafka.Message, warmup+iters)
	for i := range msgs {
		var err error
		if msgs[i], err = stream.Marshal(g.opts.Topics.Cases, "xuhui", &cityhubv1.CaseChange{Case: benchCase(int64(i + 1))}); err != nil {
			b.Fatal(err)
		}
	}
	gr := newReaders()
	defer func() { g.stop(); gr.wg.Wait() }()
	conns := dialMany(b, wsURL(srv, "/v1/live"), http.Header{"Authorization": {"Bearer " + tok}}, n)
	for _, ws := range conns {
		_ = ws.WriteMessage(websocket.TextMessage, []byte(subscribeAll))
		for range 2 {
			if _, _, err := ws.ReadMessage(); err != nil {
				b.Fatalf("snapshot: %v", err)
			}
		}
		gr.run(ws)
	}
	gr.broadcast(b, n, warmup, func(i int) { g.handle(msgs[i]) })
	lat := gr.broadcast(b, n, iters, func(i int) { g.handle(msgs[warmup+i]) })
	if got := testutil.ToFloat64(g.metrics.resets); got != 0 {
		b.Fatalf("%v clients were reset; the comparison is void", got)
	}
	return lat
}

// The idle-connection benchmark opens its clients in a child process (this
// test binary, started again with idleClientsEnv set), so that the memory
// it measures is the server's alone.
const idleClientsEnv = "CITYHUB_LIVE_IDLE_CLIENTS"

// runIdleClients is the child: it opens the connections named by the
// environment, subscribes each, says "ready" and holds them until its
// standard input closes.
func runIdleClients() int {
	spec := strings.SplitN(os.Getenv(idleClientsEnv), " ", 3) // n url [token]
	n, err := strconv.Atoi(spec[0])
	if err != nil || len(spec) < 2 {
		fmt.Fprintln(os.Stderr, "idle clients: want \"n url [token]\"")
		return 2
	}
	h := http.Header{}
	if len(spec) == 3 {
		h.Set("Authorization", "Bearer "+spec[2])
	}
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	conns := make([]*websocket.Conn, 0, n)
	for range n {
		ws, _, err := d.Dial(spec[1], h)
		if err != nil {
			fmt.Fprintln(os.Stderr, "idle clients: dial:", err)
			return 1
		}
		if len(spec) == 3 {
			_ = ws.WriteMessage(websocket.TextMessage, []byte(subscribeAll))
			for range 2 {
				if _, _, err := ws.ReadMessage(); err != nil {
					fmt.Fprintln(os.Stderr, "idle clients: snapshot:", err)
					return 1
				}
			}
		}
		conns = append(conns, ws)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, ws := range conns {
		ws.Close()
	}
	return 0
}

// serverCost opens n idle clients in a child process against url and
// returns the server's heap and stack growth and goroutines per connection.
func serverCost(b *testing.B, n int, url, token string) (heap, stack, goroutines float64) {
	b.Helper()
	measure := func() (runtime.MemStats, int) {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m, runtime.NumGoroutine()
	}
	m0, g0 := measure()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), idleClientsEnv+"="+strings.TrimSpace(fmt.Sprintf("%d %s %s", n, url, token)))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		b.Fatalf("idle clients: %q %v", line, err)
	}
	m1, g1 := measure()
	return float64(int64(m1.HeapInuse)-int64(m0.HeapInuse)) / float64(n),
		float64(int64(m1.StackInuse)-int64(m0.StackInuse)) / float64(n),
		float64(g1-g0) / float64(n)
}

// BenchmarkIdleConnection reports what one subscribed, idle connection
// costs the gateway, next to a bare connection of the raw hub.
func BenchmarkIdleConnection(b *testing.B) {
	const n = 2000
	raiseFileLimit(b, n)
	for range b.N {
		raw := newRawHub()
		rawSrv := httptest.NewServer(raw)
		rawHeap, rawStack, rawG := serverCost(b, n, wsURL(rawSrv, "/"), "")
		rawSrv.Close()
		raw.wg.Wait()

		g, srv, tok := benchGateway(b)
		heap, stack, gs := serverCost(b, n, wsURL(srv, "/v1/live"), tok)
		g.stop()
		srv.Close()

		b.ReportMetric(heap, "heap-B/conn")
		b.ReportMetric(stack, "stack-B/conn")
		b.ReportMetric(gs, "goroutines/conn")
		b.ReportMetric((heap+stack)/1024, "KiB/conn")
		b.ReportMetric((rawHeap+rawStack)/1024, "raw-KiB/conn")
		b.ReportMetric(rawG, "raw-goroutines/conn")
		b.ReportMetric(rawHeap, "raw-heap-B/conn")
		b.ReportMetric(rawStack, "raw-stack-B/conn")
	}
}
