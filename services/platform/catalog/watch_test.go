package catalog

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestWatchFollowsTheFileAndKeepsTheLastGoodCatalog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "catalog.yaml")
		write := func(doc string) {
			if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write(good)
		var got []*Catalog
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- Watch(ctx, path, time.Second, nil, func(c *Catalog) { got = append(got, c) }) }()

		synctest.Wait()
		if len(got) != 1 || !got[0].HasDepartment("water-affairs") {
			t.Fatalf("at start: %d catalogs", len(got))
		}
		time.Sleep(3 * time.Second) // unchanged: nothing new
		synctest.Wait()
		if len(got) != 1 {
			t.Fatalf("an unchanged file was applied again: %d", len(got))
		}
		write(strings.Replace(good, "owner: water-affairs", "owner: nobody", 1)) // refused
		time.Sleep(time.Second)
		synctest.Wait()
		if len(got) != 1 {
			t.Fatalf("a catalog that does not load was applied")
		}
		write(strings.Replace(good, "  - {code: water-affairs, name: 水务局}", "  - {code: water-affairs, name: 水务局}\n  - {code: gas, name: 燃气}", 1))
		time.Sleep(time.Second)
		synctest.Wait()
		if len(got) != 2 || !got[1].HasDepartment("gas") {
			t.Fatalf("the changed catalog: %d catalogs", len(got))
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch = %v", err)
		}
	})
}
