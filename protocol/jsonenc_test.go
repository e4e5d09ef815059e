package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzAppendJSONString is a differential test of the JSON string encoder
// against encoding/json. Whatever the input:
//   - the output is one valid JSON string in valid UTF-8 (encoding/json
//     would accept raw invalid bytes and decode them as U+FFFD, so this is
//     checked on its own), with no raw control character and no raw
//     U+2028/U+2029 (it must stay a JavaScript literal, JSONP);
//   - it decodes to what encoding/json's own encoding of the input decodes
//     to: for valid UTF-8 that is the input itself; for invalid UTF-8 both
//     replace each byte that does not start a valid sequence with U+FFFD
//     (one U+FFFD per bad byte, the valid runes around it kept).
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{
		"", "plain", `"quoted" \back\slash/`, "\x00\x01\x1f\x7f", "\n\r\t\b\f",
		"é中😀", "\u2028\u2029", "\xff", "a\xc3", "\xed\xa0\x80", "\xef\xbf\xbd", "<script>&",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		out := appendJSONString([]byte("prefix"), s)
		if !bytes.HasPrefix(out, []byte("prefix")) {
			t.Fatalf("the encoder overwrote dst: %q", out)
		}
		out = out[len("prefix"):]
		if !json.Valid(out) {
			t.Fatalf("%q encodes as invalid JSON %q", s, out)
		}
		if !utf8.Valid(out) {
			t.Fatalf("%q encodes as invalid UTF-8 %q", s, out)
		}
		for _, c := range out {
			if c < 0x20 {
				t.Fatalf("%q: raw control byte %#x in %q", s, c, out)
			}
		}
		if bytes.Contains(out, []byte("\u2028")) || bytes.Contains(out, []byte("\u2029")) {
			t.Fatalf("%q: raw U+2028/U+2029 in %q", s, out)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q: %q does not decode: %v", s, out, err)
		}
		ref, err := json.Marshal(string(s))
		if err != nil {
			t.Fatal(err)
		}
		var want string
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%q decodes as %q, encoding/json's as %q", s, got, want)
		}
		if utf8.Valid(s) && got != string(s) {
			t.Fatalf("valid UTF-8 %q came back as %q", s, got)
		}
	})
}
