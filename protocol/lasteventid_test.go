package protocol

import (
	"testing"
)

// FuzzLastEventID: applyLastEventID never panics, never yields more than
// max items, leaves the query's items as they are (names, order, count)
// except that each one the header names, when the header is a valid
// id-form LIST, takes the header's id; a header that is not one changes
// nothing (CF-L-03).
func FuzzLastEventID(f *testing.F) {
	for _, s := range [][2]string{
		{"chat", "chat:5"}, {"chat,news", "news:3,chat:1"}, {"Chat,news", "CHAT:9"},
		{"chat:2,news:0", "chat:7,other:1"}, {"chat", "garbage!"}, {"chat", "chat"},
		{"chat", ""}, {"a,b,c", "a:1,b:2,c:3,d:4,e:5,f:6"}, {"chat", "chat:9223372036854775808"},
		{"chat", "chat:1,chat:2"}, {"chat", "chat:1,"}, {"chat", "chat:1,news"},
	} {
		f.Add(s[0], s[1])
	}
	const max = 5
	f.Fuzz(func(t *testing.T, query, leid string) {
		items, e := parseList(nil, []byte(query), max)
		if e != nil {
			return
		}
		before := append([]listItem(nil), items...)
		given := applyLastEventID(items, nil, []byte(leid), max)
		if len(given) > max {
			t.Fatalf("%d items from %q, max %d", len(given), leid, max)
		}
		if len(items) != len(before) {
			t.Fatal("items count changed")
		}
		header, he := parseList(nil, []byte(leid), max)
		idForm := he == nil && header[0].hasID
		for i, it := range items {
			if string(it.name) != string(before[i].name) {
				t.Fatalf("item %d renamed %q → %q", i, before[i].name, it.name)
			}
			want := before[i]
			if idForm {
				for _, h := range header {
					if equalFoldASCII(h.name, it.name) {
						want.id, want.hasID = h.id, true
						break
					}
				}
			}
			if it.id != want.id || it.hasID != want.hasID {
				t.Fatalf("query %q, Last-Event-ID %q: item %q = (%d,%v), want (%d,%v)",
					query, leid, it.name, it.id, it.hasID, want.id, want.hasID)
			}
		}
	})
}
