package rulecheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/cityhub/cityhub/services/ruler/rulepack"
	"github.com/cityhub/cityhub/services/ruler/silence"
)

// maxSilencesBytes bounds a silences file.
const maxSilencesBytes = 4 << 20

// readSilences reads the silences set at run time from path, as GET
// /v1/silences answers them ({"items": [...]}) or as a bare list. The
// packs' own silences among them are left out: the packs replayed bring
// theirs.
func readSilences(path string) ([]*rulepack.Silence, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSilencesBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSilencesBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxSilencesBytes)
	}
	var views []silence.View
	if b = bytes.TrimSpace(b); bytes.HasPrefix(b, []byte("[")) {
		err = json.Unmarshal(b, &views)
	} else {
		var list struct {
			Items []silence.View `json:"items"`
		}
		err = json.Unmarshal(b, &list)
		views = list.Items
	}
	if err != nil {
		return nil, fmt.Errorf("%s: not a list of silences: %w", path, err)
	}
	var out []*rulepack.Silence
	for i, v := range views {
		if v.Source == "pack" {
			continue
		}
		if v.ID == "" || v.EndsAt.IsZero() || !v.EndsAt.After(v.StartsAt) {
			return nil, fmt.Errorf("%s: silence %d (%q): want an id and an end after its start", path, i+1, v.ID)
		}
		out = append(out, &rulepack.Silence{
			Name: v.ID, Matchers: v.Matchers, Starts: v.StartsAt, Ends: v.EndsAt, Reason: v.Comment, CreatedBy: v.CreatedBy,
		})
	}
	return out, nil
}
