package open311_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/intake/open311"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

func idsOf(rs []open311.Request) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func TestStoreAddGet(t *testing.T) {
	srv := redistest.Start(t)
	clk := &clock{t: t0}
	s := open311.NewRedisStore(srv.Client, open311.StoreOptions{Now: clk.Now, Retention: 30 * 24 * time.Hour})
	ctx := t.Context()
	r := open311.Request{ID: "a1", Source: "citizen_app", ServiceCode: "waterlogging", ServiceName: "道路积水",
		Requested: t0, Lat: ptr(31.19), Long: ptr(121.44), District: "xuhui", Description: "积水", Notice: "已受理"}
	got, created, err := s.Add(ctx, r)
	if err != nil || !created {
		t.Fatalf("Add = %v, %v", created, err)
	}
	if !got.Requested.Equal(r.Requested) || got.Description != r.Description || *got.Lat != 31.19 {
		t.Errorf("Add returned %+v", got)
	}
	// The same id again keeps the first.
	again := r
	again.Description = "another"
	got, created, err = s.Add(ctx, again)
	if err != nil || created || got.Description != "积水" {
		t.Errorf("Add again = %+v, %v, %v", got, created, err)
	}
	if _, _, err := s.Add(ctx, open311.Request{ID: "b1", ServiceCode: "waterlogging", Requested: t0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Get(ctx, "b1", "missing", "a1", "not an id!")
	if err != nil || !slices.Equal(idsOf(rs), []string{"b1", "a1"}) {
		t.Errorf("Get = %v, %v", idsOf(rs), err)
	}
	if rs, err := s.Get(ctx); err != nil || len(rs) != 0 {
		t.Errorf("Get() = %v, %v", rs, err)
	}
	for _, bad := range []open311.Request{{ID: "has space", ServiceCode: "waterlogging"}, {ID: "ok", ServiceCode: "Water"}} {
		if _, _, err := s.Add(ctx, bad); err == nil {
			t.Errorf("Add(%+v) took it", bad)
		}
	}
	if _, err := s.List(ctx, open311.Query{From: t0, To: t0, ServiceCodes: []string{"Bad Code"}, Limit: 1}); err == nil {
		t.Error("List took a bad service code")
	}

	// Every key shares one hash tag, under the package's prefix, and
	// requests expire.
	keys, err := redistest.Keys(ctx, srv.Client, "*")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{
		"cityhub:open311:{requests}:by-service:waterlogging",
		"cityhub:open311:{requests}:by-time",
		"cityhub:open311:{requests}:r:a1",
		"cityhub:open311:{requests}:r:b1",
	}
	if !slices.Equal(keys, want) {
		t.Errorf("keys %v\nwant %v", keys, want)
	}
	for _, k := range keys {
		ttl, err := srv.Client.TTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > 30*24*time.Hour {
			t.Errorf("%s: TTL %v, %v", k, ttl, err)
		}
	}

	// Index entries older than the retention go when the index is next
	// written to.
	clk.Set(t0.Add(31 * 24 * time.Hour))
	if _, _, err := s.Add(ctx, open311.Request{ID: "c1", ServiceCode: "waterlogging", Requested: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"cityhub:open311:{requests}:by-time", "cityhub:open311:{requests}:by-service:waterlogging"} {
		if ids, _ := srv.Client.ZRange(ctx, k, 0, -1).Result(); !slices.Equal(ids, []string{"c1"}) {
			t.Errorf("%s holds %v", k, ids)
		}
	}
}

// TestStoreList holds the merge of several services' indexes to the one
// index of every request, filtered: the same requests, in the same order,
// for every window, offset and limit.
func TestStoreList(t *testing.T) {
	srv := redistest.Start(t)
	s := open311.NewRedisStore(srv.Client, open311.StoreOptions{Now: func() time.Time { return t0 }})
	ctx := t.Context()
	rnd := rand.New(rand.NewPCG(1, 2))
	codes := []string{"waterlogging", "manhole_cover_missing", "illegal_parking"}
	var all []open311.Request
	for i := range 300 {
		r := open311.Request{
			ID: fmt.Sprintf("r%03d", i), ServiceCode: codes[rnd.IntN(len(codes))],
			// Minutes repeat, so that ties are ordered too.
			Requested: t0.Add(-time.Duration(rnd.IntN(200)) * time.Minute),
		}
		if _, _, err := s.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	// newest first, ties by id, latest first
	slices.SortFunc(all, func(a, b open311.Request) int {
		if c := b.Requested.Compare(a.Requested); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	for range 40 {
		from := t0.Add(-time.Duration(rnd.IntN(200)) * time.Minute)
		to := from.Add(time.Duration(rnd.IntN(120)) * time.Minute)
		q := open311.Query{From: from, To: to, Offset: rnd.IntN(30), Limit: 1 + rnd.IntN(60)}
		if rnd.IntN(4) > 0 {
			q.ServiceCodes = slices.Clone(codes[:1+rnd.IntN(2)])
		}
		var want []string
		for _, r := range all {
			if !r.Requested.Before(from) && !r.Requested.After(to) && (q.ServiceCodes == nil || slices.Contains(q.ServiceCodes, r.ServiceCode)) {
				want = append(want, r.ID)
			}
		}
		want = want[min(q.Offset, len(want)):]
		want = want[:min(q.Limit, len(want))]
		got, err := s.List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(idsOf(got), append([]string{}, want...)) {
			t.Fatalf("List(%v..%v %v +%d %d)\n= %v\nwant %v", from.Format(time.Kitchen), to.Format(time.Kitchen), q.ServiceCodes, q.Offset, q.Limit, idsOf(got), want)
		}
	}
	if got, err := s.List(ctx, open311.Query{From: t0, To: t0.Add(-time.Hour), Limit: 10}); err != nil || len(got) != 0 {
		t.Errorf("an empty window: %v, %v", got, err)
	}
}
