package cap_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	capxml "github.com/cityhub/cityhub/services/intake/cap"
)

func files(t testing.TB, pattern string) []string {
	t.Helper()
	fs, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(fs) == 0 {
		t.Fatalf("no testdata/%s", pattern)
	}
	return fs
}

func read(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGoodDocuments(t *testing.T) {
	for _, f := range files(t, "*.good.xml") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			if _, err := capxml.Parse(read(t, f)); err != nil {
				t.Fatalf("%+v", problems(err))
			}
		})
	}
}

var wantRE = regexp.MustCompile(`<!-- want: (.*) -->`)

// TestBadDocuments checks that each bad document yields problems at
// exactly the paths its "<!-- want: PATH -->" comments list.
func TestBadDocuments(t *testing.T) {
	for _, f := range files(t, "*.bad.xml") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			b := read(t, f)
			var want []string
			for _, m := range wantRE.FindAllSubmatch(b, -1) {
				want = append(want, string(m[1]))
			}
			if len(want) == 0 {
				t.Fatal("no <!-- want: --> lines")
			}
			a, err := capxml.Parse(b)
			if err == nil {
				t.Fatalf("accepted: %+v", a)
			}
			var got []string
			for _, p := range problems(err) {
				got = append(got, p.Path)
				if p.Message == "" {
					t.Errorf("%s: no message", p.Path)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("problems at\n  %s\nwant\n  %s\n(%v)", strings.Join(got, "\n  "), strings.Join(want, "\n  "), problems(err))
			}
		})
	}
}

func problems(err error) []capxml.Problem {
	var ce *capxml.Error
	if !errors.As(err, &ce) {
		return []capxml.Problem{{Path: "?", Message: err.Error()}}
	}
	return ce.Problems
}

// A few documents read field by field: what Parse keeps is what was sent.
func TestParseValues(t *testing.T) {
	a, err := capxml.Parse(read(t, "testdata/typhoon-update.good.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if a.MsgType != "Update" || len(a.References) != 1 || a.References[0].Identifier != "SHMB-2026-0914-0042" {
		t.Errorf("msgType %s references %+v", a.MsgType, a.References)
	}
	if _, off := a.Sent.Zone(); off != 8*3600 || a.Sent.Hour() != 6 {
		t.Errorf("sent %v: the offset is kept", a.Sent)
	}
	if got := len(a.Infos); got != 2 {
		t.Fatalf("%d infos", got)
	}
	in := a.Infos[0]
	if !slices.Equal(in.Categories, []string{"Met", "Safety"}) || !slices.Equal(in.ResponseTypes, []string{"Shelter", "Avoid"}) {
		t.Errorf("categories %v response types %v", in.Categories, in.ResponseTypes)
	}
	if p := in.Areas[0].Polygons[0]; len(p) != 5 || p[1] != (capxml.Point{Lat: 31.19, Lon: 121.53}) {
		t.Errorf("polygon %v", p)
	}
	if c := in.Areas[1].Circles[0]; c.RadiusKM != 20 || c.Centre.Lat != 31.30 {
		t.Errorf("circle %+v", c)
	}

	r, err := capxml.Parse(read(t, "testdata/restricted.good.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, off := r.Sent.Zone(); off != 0 || capxml.FormatTime(r.Sent) != "2026-03-20T01:00:00-00:00" {
		t.Errorf("sent %v", r.Sent)
	}
	if r.Note != "Spring drill & communications check" || !slices.Equal(r.Codes, []string{"drill", "chemical"}) {
		t.Errorf("note %q codes %v", r.Note, r.Codes)
	}
	ar := r.Infos[0].Areas[0]
	if ar.Altitude == nil || *ar.Altitude != 0 || ar.Ceiling == nil || *ar.Ceiling != 1500.5 {
		t.Errorf("altitude %v ceiling %v", ar.Altitude, ar.Ceiling)
	}
	if s := r.Infos[0].Resources[0].Size; s == nil || *s != 20480 {
		t.Errorf("size %v", s)
	}
}

// The limits hold before and while reading: size, depth, element count.
func TestLimits(t *testing.T) {
	head := `<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>x</identifier>`
	deep := head + strings.Repeat("<info>", capxml.MaxDepth) + strings.Repeat("</info>", capxml.MaxDepth) + "</alert>"
	many := head + strings.Repeat("<code>c</code>", capxml.MaxElements) + "</alert>"
	huge := head + "<note>" + strings.Repeat("x", capxml.MaxBytes) + "</note></alert>"
	for _, tc := range []struct {
		name, doc, path, message string
	}{
		{"deep", deep, "alert/info[0]", "nested more than 16 deep"},
		{"many", many, "alert", "more than 20000 elements"},
		{"huge", huge, capxml.DocumentPath, "at most 1048576"},
		{"empty", "", capxml.DocumentPath, "empty"},
		{"text", "hello", capxml.DocumentPath, "no alert element"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := capxml.Parse([]byte(tc.doc))
			ps := problems(err)
			// Reading stops at the limit, which is the last problem.
			if last := ps[len(ps)-1]; last.Path != tc.path || !strings.Contains(last.Message, tc.message) {
				t.Errorf("got %+v, want the last at %s saying %q", ps, tc.path, tc.message)
			}
		})
	}
}

// Marshal writes what Parse reads back to the same message, and Parse
// accepts everything Marshal writes.
func TestMarshalRoundTrip(t *testing.T) {
	for _, f := range files(t, "*.good.xml") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			a, err := capxml.Parse(read(t, f))
			if err != nil {
				t.Fatal(err)
			}
			b, err := capxml.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			back, err := capxml.Parse(b)
			if err != nil {
				t.Fatalf("%v\n%s", problems(err), b)
			}
			again, err := capxml.Marshal(back)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, again) {
				t.Errorf("marshal, parse, marshal changed the document:\n%s\n---\n%s", b, again)
			}
			if !back.Sent.Equal(a.Sent) || len(back.Infos) != len(a.Infos) {
				t.Errorf("sent %v infos %d, want %v %d", back.Sent, len(back.Infos), a.Sent, len(a.Infos))
			}
		})
	}
}

func TestMarshalRefusesInvalid(t *testing.T) {
	a := &capxml.Alert{
		Identifier: "a b", Sender: "city", Sent: time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC),
		Status: "Actual", MsgType: "Cancel", Scope: "Public",
		Infos: []capxml.Info{{Categories: []string{"Met"}, Event: "x", Urgency: "Past", Severity: "Minor", Certainty: "Observed",
			Areas: []capxml.Area{{Desc: "d", Polygons: []capxml.Polygon{{{Lat: 1, Lon: 1}, {Lat: 2, Lon: 1}, {Lat: 1, Lon: 1}}}}}}},
	}
	_, err := capxml.Marshal(a)
	var got []string
	for _, p := range problems(err) {
		got = append(got, p.Path)
	}
	want := []string{"alert/identifier", "alert/references", "alert/info[0]/area[0]/polygon[0]"}
	if !slices.Equal(got, want) {
		t.Errorf("problems %v, want %v", got, want)
	}
}

func TestTimes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		back string
	}{
		{"2026-07-01T08:30:00+08:00", true, "2026-07-01T08:30:00+08:00"},
		{"2026-07-01T00:30:00-00:00", true, "2026-07-01T00:30:00-00:00"},
		{"2026-07-01T00:30:00+00:00", true, "2026-07-01T00:30:00-00:00"},
		{"2026-07-01T00:30:00-05:30", true, "2026-07-01T00:30:00-05:30"},
		{"2026-07-01T00:30:00Z", false, ""},
		{"2026-07-01T00:30:00", false, ""},
		{"2026-07-01T00:30:00.5+08:00", false, ""},
		{"2026-07-01 00:30:00+08:00", false, ""},
		{"2026-13-01T00:30:00+08:00", false, ""},
	} {
		got, err := capxml.ParseTime(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseTime(%q): err %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && capxml.FormatTime(got) != tc.back {
			t.Errorf("FormatTime(ParseTime(%q)) = %s, want %s", tc.in, capxml.FormatTime(got), tc.back)
		}
	}
}

// FuzzParse feeds Parse anything: it must never panic, and what it
// accepts must survive Marshal and Parse unchanged. The seeds are the
// testdata documents and testdata/fuzz/FuzzParse; they run in every go
// test.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"*.good.xml", "*.bad.xml"} {
		for _, file := range files(f, pattern) {
			f.Add(read(f, file))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := capxml.Parse(data)
		if err != nil {
			var ce *capxml.Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error %v is not an *Error with problems", err)
			}
			return
		}
		b, err := capxml.Marshal(a)
		if err != nil {
			t.Fatalf("Marshal refused what Parse accepted: %v", err)
		}
		back, err := capxml.Parse(b)
		if err != nil {
			t.Fatalf("Parse refused what Marshal wrote: %v\n%s", err, b)
		}
		again, err := capxml.Marshal(back)
		if err != nil || !bytes.Equal(b, again) {
			t.Fatalf("round trip changed the document (%v):\n%s\n---\n%s", err, b, again)
		}
	})
}
