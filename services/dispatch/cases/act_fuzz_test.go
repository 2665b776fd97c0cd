package cases

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
)

// parseBody decodes an action body as the dispatcher API does (one JSON
// object, no unknown fields, nothing after it) and checks it.
func parseBody(r io.Reader) (ActRequest, lifecycle.Request, error) {
	var body ActRequest
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return body, lifecycle.Request{}, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return body, lifecycle.Request{}, errors.New("data after the object")
	}
	req, err := parseAction(body)
	return body, req, err
}

// FuzzParseAction feeds arbitrary bodies to the action decoder: it must
// never panic, and what it accepts must be a valid request that survives a
// round trip through JSON unchanged.
func FuzzParseAction(f *testing.F) {
	for _, seed := range []string{
		`{"action":"accept","department":"water-affairs","note":"","expected_version":3,"request_id":"r-1"}`,
		`{"action":"verify","pass":false,"note":"still flooded","expected_version":5,"request_id":"r.2"}`,
		`{"action":"dispatch","lead":"gas","assist":["traffic-police"],"sla":{"accept":"10m","handle":"2h"},"expected_version":1,"request_id":"x"}`,
		`{"action":"accept","expected_version":1,"request_id":"alert:a1:0"}`,
		`{"action":"comment","note":"x","expected_version":1,"request_id":"timer:water-affairs:accept:1:1751356800000"}`,
		`{"action":"accept","expected_version":1,"request_id":"r"} []`,
		`{"action":"accept","expected_version":-1}`,
		`{"action":"comment","note":"\u0000","expected_version":9223372036854775807,"request_id":"r"}`,
		`{"action":"dispatch","lead":"gas","assist":[],"sla":{},"expected_version":1,"request_id":"x"}`,
		`[]`, `null`, ``, `{"sla":{"accept":"-1h"}}`,
		`{"action":"merge","into":"xuhui-01jz2g93z0ptff52h35j58yj80","expected_version":2,"request_id":"m"}`,
		`{"action":"merge","into":"../etc","expected_version":2,"request_id":"m"}`,
		`{"action":"request_extension","note":"parts","extend_by":"1.5wd","expected_version":4,"request_id":"e"}`,
		`{"action":"request_extension","note":"parts","until":"2025-07-02T17:30:00+08:00","expected_version":4,"request_id":"e"}`,
		`{"action":"request_extension","note":"parts","extend_by":"2h","until":"2025-07-02T17:30:00+08:00","expected_version":4,"request_id":"e"}`,
		`{"action":"dispatch","lead":"gas","case_class":"standard","expected_version":1,"request_id":"x"}`,
		`{"action":"accept","into":"xuhui-01jz2g93z0ptff52h35j58yj80","expected_version":1,"request_id":"x"}`,
		// Merges as probes send them: stale or absurd versions, into the
		// case itself, into ids that name nothing or are not ids at all.
		`{"action":"merge","into":"huangpu-01jz2g93z0ptff52h35j58yj80","expected_version":1,"request_id":"m-stale"}`,
		`{"action":"merge","into":"huangpu-01jz2g93z0ptff52h35j58yj80","expected_version":9223372036854775807,"request_id":"m"}`,
		`{"action":"merge","into":"huangpu-01jz2g93z0ptff52h35j58yj80","expected_version":0,"request_id":"m"}`,
		`{"action":"merge","into":"huangpu-01jz2g93z0ptff52h35j58yj80","expected_version":-3,"request_id":"m"}`,
		`{"action":"merge","into":"huangpu-01jz2g93z0ptff52h35j58yj80","expected_version":1.5,"request_id":"m"}`,
		`{"action":"merge","into":"xuhui-01jz2g93z0ptff52h35j58yj80","expected_version":3,"request_id":"m-self","note":"into itself"}`,
		`{"action":"merge","into":"huangpu-00000000000000000000000000","expected_version":2,"request_id":"m"}`,
		`{"action":"merge","into":"huangpu-01jz2g93z0ptff52h35j58yj8u","expected_version":2,"request_id":"m"}`,
		`{"action":"merge","into":"HUANGPU-01JZ2G93Z0PTFF52H35J58YJ80","expected_version":2,"request_id":"m"}`,
		`{"action":"merge","into":"atlantis-01jz2g93z0ptff52h35j58yj80","expected_version":2,"request_id":"m"}`,
		`{"action":"merge","into":"{xuhui}-01jz2g93z0ptff52h35j58yj80","expected_version":2,"request_id":"m"}`,
		`{"action":"merge","into":"-01jz2g93z0ptff52h35j58yj80","expected_version":2,"request_id":"m"}`,
		`{"action":"merge","into":"","expected_version":2,"request_id":"m"}`,
		`{"action":"merge","into":null,"expected_version":2,"request_id":"m"}`,
		`{"action":"merge","into":["huangpu-01jz2g93z0ptff52h35j58yj80"],"expected_version":2,"request_id":"m"}`,
		`{"action":"merge","into":"huangpu-01jz2g93z0ptff52h35j58yj80","expected_version":2,"request_id":"merge/xuhui-01jz2g93z0ptff52h35j58yj80/m"}`,
		`{"action":"merge","into":"huangpu-01jz2g93z0ptff52h35j58yj80","into":"xuhui-01jz2g93z0ptff52h35j58yj80","expected_version":2,"request_id":"m"}`,
		// Garbage action names.
		`{"action":"","expected_version":1,"request_id":"g"}`,
		`{"action":"MERGE","into":"huangpu-01jz2g93z0ptff52h35j58yj80","expected_version":1,"request_id":"g"}`,
		`{"action":"merge ","into":"huangpu-01jz2g93z0ptff52h35j58yj80","expected_version":1,"request_id":"g"}`,
		`{"action":"absorb","into":"huangpu-01jz2g93z0ptff52h35j58yj80","expected_version":1,"request_id":"g"}`,
		`{"action":"create","expected_version":1,"request_id":"g"}`,
		`{"action":"read","expected_version":1,"request_id":"g"}`,
		`{"action":"accept\u0000","expected_version":1,"request_id":"g"}`,
		`{"action":"../../etc/passwd","expected_version":1,"request_id":"g"}`,
		`{"action":"` + strings.Repeat("x", 4096) + `","expected_version":1,"request_id":"g"}`,
		`{"action":7,"expected_version":1,"request_id":"g"}`,
		`{"action":{"merge":true},"expected_version":1,"request_id":"g"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		body, req, err := parseBody(bytes.NewReader(b))
		if err != nil {
			return
		}
		if !lifecycle.Known(req.Action) || body.ExpectedVersion < 1 || !validRequestID(body.RequestID) || len(body.Note) > maxNoteBytes {
			t.Fatalf("accepted an invalid request: %+v", body)
		}
		if (req.Action == lifecycle.Dispatch) != (req.Dispatch != nil) {
			t.Fatalf("dispatch spec %v for action %s", req.Dispatch, req.Action)
		}
		if (req.Action == lifecycle.Merge) != (req.Into != "") || (body.Into != "" && req.Action != lifecycle.Merge) {
			t.Fatalf("merge target %q for action %s", req.Into, req.Action)
		}
		if (body.ExtendBy != "" || body.Until != "") && req.Action != lifecycle.RequestExtension {
			t.Fatalf("extension fields for action %s", req.Action)
		}
		if req.Action == lifecycle.RequestExtension && (body.ExtendBy == "") == (body.Until == "") {
			t.Fatalf("extension request with neither or both of extend_by and until: %+v", body)
		}
		again, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		body2, _, err := parseBody(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("re-encoded body %s refused: %v", again, err)
		}
		if len(body.Assist) == 0 {
			body.Assist = nil // [] and an absent list mean the same
		}
		if !reflect.DeepEqual(body, body2) {
			t.Fatalf("round trip changed %+v into %+v", body, body2)
		}
	})
}

// The hub's own changes carry request ids with reserved prefixes; a client
// that took one first would stop the change from ever happening (a
// deadline's warning, the case opened from an alert).
func TestSystemRequestIDsAreRefused(t *testing.T) {
	for id, ok := range map[string]bool{
		"r-1":            true,
		"client:timer:1": true,
		"alert:a1:0":     false,
		"timer:water-affairs:accept:1:1751356800000": false,
	} {
		body := `{"action":"comment","note":"x","expected_version":1,"request_id":"` + id + `"}`
		_, _, err := parseBody(strings.NewReader(body))
		var fe *InvalidError
		if got := err == nil; got != ok || (!ok && (!errors.As(err, &fe) || fe.Field != "request_id")) {
			t.Errorf("request id %q: %v, want accepted %v", id, err, ok)
		}
	}
}
