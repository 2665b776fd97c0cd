package open311

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
)

// nopStore and nopCases let a Handler be built for what needs no store.
type nopStore struct{}

func (nopStore) Add(_ context.Context, r Request) (Request, bool, error) { return r, true, nil }
func (nopStore) Get(context.Context, ...string) ([]Request, error)       { return nil, nil }
func (nopStore) List(context.Context, Query) ([]Request, error)          { return nil, nil }

func fuzzHandler(t testing.TB) *Handler {
	t.Helper()
	cat, err := catalog.Load("testdata/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	v, err := auth.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{
		Catalog: cat, Verifier: v, Requests: nopStore{},
		Submit: func(context.Context, string, auth.Principal, []*events.Input) ([]string, error) { return nil, nil },
		Cases:  CasesFunc(func(context.Context, string, string, string) (Status, bool, error) { return Status{}, false, nil }),
		Now:    func() time.Time { return time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// FuzzDecodeRequest feeds the form decoder whatever a client may send. It
// must never fail but with problems; what it takes must be a report the
// protocol allows; and what a report becomes must be an event intake takes,
// unless intake's own limits (on the address, the text, one attribute)
// say otherwise — the adapter never builds an event intake refuses for a
// reason of the form's.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		"api_key=k&service_code=waterlogging&lat=31.188&long=121.4372&description=%E7%A7%AF%E6%B0%B4&attribute%5Bwater_depth_cm%5D=15",
		"service_code=waterlogging&lat=31.2&lon=121.5&attribute[noticed_at]=2026-07-01T08:30&attribute[remarks]=a%0Ab",
		"service_code=manhole_cover_missing&address_string=%E5%BE%90%E6%B1%87%E5%8C%BA&attribute[on_carriageway]=true&attribute[kind][]=rain&attribute[kind][]=power",
		"service_code=illegal_parking&address_id=77&attribute[plate]=%E6%B2%AAA1&attribute[district]=pudong",
		"service_code=waterlogging&lat=NaN&long=Inf",
		"service_code=waterlogging&lat=1e400&long=-0",
		"service_code=&lat=&long=&email=a%40b.c&phone=1",
		"attribute[=1&attribute[]]=2&attribute[a][b]=3",
		"a=%zz&b=%ff%fe",
		"x;y=1",
		"",
		"service_code=waterlogging&address_string=xuhui&media_url=http://%5B::1%5D/a",
	} {
		f.Add([]byte(seed))
	}
	h := fuzzHandler(f)
	dec := events.Decoder{Catalog: h.opts.Catalog, Now: h.opts.Now}
	f.Fuzz(func(t *testing.T, body []byte) {
		rep, probs := decodeRequest(body)
		rep2, probs2 := decodeRequest(body)
		if !reflect.DeepEqual(rep, rep2) || !reflect.DeepEqual(probs, probs2) {
			t.Fatal("decoding the same body twice gave two answers")
		}
		for _, p := range probs {
			if !utf8.ValidString(p.String()) {
				t.Fatalf("a problem that is not UTF-8: %q", p)
			}
		}
		if rep == nil {
			if len(probs) == 0 {
				t.Fatal("no report and no problem")
			}
			return
		}
		if len(probs) > 0 {
			return
		}
		checkReport(t, rep)

		in, rec, rf := h.translate(rep, "citizen_app")
		if rf != nil {
			if len(rf.problems) == 0 || (rf.status != 400 && rf.status != 404) {
				t.Fatalf("refused with %d %v", rf.status, rf.problems)
			}
			return
		}
		if rec.District != in.Location.District || rec.ServiceCode != in.Type {
			t.Fatalf("record %+v for event %+v", rec, in)
		}
		in.ID = "01kwdpf480y4s542tqqwfq8y6t"
		if _, errs := dec.Validate(in); len(errs) > 0 {
			for _, e := range errs {
				if e.Field != "location.address" && e.Field != "text" && !strings.HasPrefix(e.Field, "attrs.") {
					t.Fatalf("intake refuses the event a good report became: %v\n%+v", errs, in)
				}
			}
		}
	})
}

// checkReport holds a report the decoder took to what the protocol says.
func checkReport(t *testing.T, rep *report) {
	t.Helper()
	if rep.ServiceCode == "" {
		t.Fatal("taken without a service_code")
	}
	if (rep.Lat == nil) != (rep.Long == nil) {
		t.Fatal("lat without long")
	}
	if rep.Lat != nil {
		for _, v := range []float64{*rep.Lat, *rep.Long} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("coordinates %v, %v", *rep.Lat, *rep.Long)
			}
		}
		if math.Abs(*rep.Lat) > 90 || math.Abs(*rep.Long) > 180 {
			t.Fatalf("coordinates %v, %v", *rep.Lat, *rep.Long)
		}
	} else if rep.Address == "" {
		t.Fatal("taken without a location")
	}
	if !utf8.ValidString(rep.Description) || utf8.RuneCountInString(rep.Description) > MaxDescriptionRunes {
		t.Fatalf("description of %d bytes", len(rep.Description))
	}
	if len(rep.Attributes) > maxFields {
		t.Fatalf("%d attributes", len(rep.Attributes))
	}
	for _, s := range []string{rep.ServiceCode, rep.Address, rep.AddressID, rep.Description, rep.MediaURL, rep.Jurisdiction} {
		if !xmlText(s) {
			t.Fatalf("taken with text XML cannot carry: %q", s)
		}
	}
	for code, vs := range rep.Attributes {
		if code == "" || strings.ContainsAny(code, "[]") || !xmlText(code) || len(vs) == 0 || len(vs) > maxValues {
			t.Fatalf("attribute %q = %q", code, vs)
		}
		for _, v := range vs {
			if v == "" || !utf8.ValidString(v) || !xmlText(v) {
				t.Fatalf("attribute %q = %q", code, vs)
			}
		}
	}
}
