package engine

import (
	"encoding/hex"
	"hash/fnv"
	"maps"
	"slices"
)

// Fingerprint returns the id of the alert of rule ("pack/rule") for the
// given group labels: 16 hex digits of an FNV-64a hash over the rule and the
// labels in name order. It does not depend on the order labels were given
// in, and changes with any name or value.
func Fingerprint(rule string, labels map[string]string) string {
	h := fnv.New64a()
	h.Write([]byte(rule))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		// Separators that cannot occur in UTF-8 text keep ("a", "bc") and
		// ("ab", "c") apart.
		h.Write([]byte{0xff})
		h.Write([]byte(k))
		h.Write([]byte{0xfe})
		h.Write([]byte(labels[k]))
	}
	var sum [8]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}
