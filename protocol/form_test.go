package protocol

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFormParse(t *testing.T) {
	cases := []struct {
		name          string
		query, body   string
		isForm        bool
		want          map[string]string
		err           *apiError
		errKeepsValue string // a name that must still be found after an error
	}{
		{name: "plain", query: "a=1&b=two", want: map[string]string{"a": "1", "b": "two"}},
		{name: "plus is space", query: "m=hello+baby%21", want: map[string]string{"m": "hello baby!"}},
		{name: "plus in body", body: "m=a+b", isForm: true, want: map[string]string{"m": "a b"}},
		{name: "empty value and bare name", query: "a=&b", want: map[string]string{"a": "", "b": ""}},
		{name: "empty segments", query: "&&a=1&", want: map[string]string{"a": "1"}},
		{name: "body wins", query: "a=q", body: "a=b", isForm: true, want: map[string]string{"a": "b"}},
		{name: "body ignored unless form", query: "a=q", body: "a=b", want: map[string]string{"a": "q"}},
		{name: "dup in query", query: "a=1&a=2", err: errDupParam},
		{name: "dup in body", body: "a=1&a=2", isForm: true, err: errDupParam},
		{name: "dup after decoding", query: "a=1&%61=2", err: errDupParam},
		{name: "bad percent", query: "a=%zz&k=v", err: errBadEncoding, errKeepsValue: "k"},
		{name: "truncated percent", query: "k=v&a=%4", err: errBadEncoding, errKeepsValue: "k"},
		{name: "invalid utf8", query: "a=%ff", err: errBadUTF8},
		{name: "nul", query: "a=x%00y", err: errBadUTF8},
		{name: "utf8 ok", query: "a=%C3%A9", want: map[string]string{"a": "é"}},
		{name: "equals in value", query: "a=b=c", want: map[string]string{"a": "b=c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f form
			f.parse([]byte(tc.query), []byte(tc.body), tc.isForm)
			if f.err != tc.err {
				t.Fatalf("err = %v, want %v", f.err, tc.err)
			}
			for k, v := range tc.want {
				got, ok := f.get(k)
				if !ok || string(got) != v {
					t.Errorf("get(%q) = %q, %v; want %q", k, got, ok, v)
				}
			}
			if tc.errKeepsValue != "" {
				if _, ok := f.get(tc.errKeepsValue); !ok {
					t.Errorf("%q lost after a decoding error", tc.errKeepsValue)
				}
			}
		})
	}
}

func TestFormParseAllocs(t *testing.T) {
	var f form
	q := []byte("qname=john-chat&tick=abc&timeout=30&callback=cb")
	body := []byte("msg=hello+baby%21&api_key=35ac8728bd764e3c80afa2cfa17405cb")
	f.parse(q, body, true) // grow the buffer once
	n := testing.AllocsPerRun(100, func() { f.parse(q, body, true) })
	if n != 0 {
		t.Fatalf("form.parse allocates %v times per request, want 0", n)
	}
}

// FuzzFormParse checks the decoder against net/url on inputs both accept,
// and that whatever it accepts is valid UTF-8 without NUL.
func FuzzFormParse(f *testing.F) {
	for _, s := range []string{"a=1&b=2", "m=hello+baby%21", "a=%zz", "a=%C3%A9&b", "&&=&a==", "x=%00", "%", "a=1&a=2"} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, query, body string) {
		var fm form
		fm.parse([]byte(query), []byte(body), true)
		for _, p := range fm.params {
			if !utf8.Valid(p.value) || !utf8.Valid(p.name) {
				t.Fatalf("accepted invalid UTF-8 %q=%q", p.name, p.value)
			}
		}
		if fm.err != nil || body != "" {
			return
		}
		std, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		for name, vals := range std {
			if len(vals) != 1 {
				continue
			}
			got, ok := fm.get(name)
			if !ok || string(got) != vals[0] {
				t.Fatalf("query %q: %q = %q, %v; net/url says %q", query, name, got, ok, vals[0])
			}
		}
	})
}

// BenchmarkFormParse is a /write body as the publish benchmark sends it.
func BenchmarkFormParse(b *testing.B) {
	var f form
	body := []byte("api_key=35ac8728bd764e3c80afa2cfa17405cb&qname=demo-abcdefgh17&msg=123456.1765151515151515151." + strings.Repeat("x", 76) + "%21+end")
	for b.Loop() {
		f.parse(nil, body, true)
	}
}
