package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// respRec records the responses a respStream passes on.
type respRec struct{ got []string }

func (r *respRec) response(x *response) error {
	r.got = append(r.got, respString(x))
	return nil
}

func respString(r *response) string {
	return fmt.Sprintf("%d %q close=%v lm=%q etag=%q", r.status, r.body, r.close, r.lastModified, r.etag)
}

// respReference is what readResponse reads of stream, one response after
// another until the first error (the end of the stream among them).
func respReference(stream []byte) []string {
	br := bufio.NewReaderSize(bytes.NewReader(stream), 16)
	var got []string
	for {
		var r response
		if err := readResponse(br, &r, lpKeep, false); err != nil {
			return got
		}
		got = append(got, respString(&r))
	}
}

// feedPieces feeds stream to a fresh respStream cut at cuts (increasing
// offsets), then its end, and returns the responses and the end's error.
func feedPieces(t *testing.T, stream []byte, cuts ...int) ([]string, error) {
	t.Helper()
	var s respStream
	var rec respRec
	var r response
	from := 0
	for _, c := range append(cuts, len(stream)) {
		// A copy: the reader's buffer is reused after each read.
		piece := append([]byte(nil), stream[from:c]...)
		from = c
		if err := s.feed(piece, false, &r, &rec); err != nil {
			return rec.got, err
		}
	}
	return rec.got, s.feed(nil, true, &r, &rec)
}

// respStreamCases are long-poll answers back to back, every framing the
// harness reads: Content-Length, chunked (extension, trailer), bodyless
// statuses whatever they say, bare LF line ends, and last a body that
// ends with the connection.
var respStreamCases = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: 7\r\nLast-Modified: Mon\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
	"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 25\n\n{\"messages\":[[\"12\",\"m\"]]}",
	"HTTP/1.0 200 OK\r\nX-Long: " + strings.Repeat("z", 200) + "\r\n\r\nuntil eof",
}

func TestRespStreamSplitEverywhere(t *testing.T) {
	stream := []byte(strings.Join(respStreamCases, ""))
	want := respReference(stream)
	if len(want) != len(respStreamCases) {
		t.Fatalf("the reference read %d responses: %q", len(want), want)
	}
	check := func(name string, got []string, err error) {
		t.Helper()
		if err != io.EOF || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: %v\n got %q\nwant %q", name, err, got, want)
		}
	}
	got, err := feedPieces(t, stream)
	check("one read", got, err)
	for i := 0; i <= len(stream); i++ {
		got, err := feedPieces(t, stream, i)
		check(fmt.Sprintf("cut at %d", i), got, err)
	}
	for step := 1; step <= 7; step++ {
		var cuts []int
		for i := step; i < len(stream); i += step {
			cuts = append(cuts, i)
		}
		got, err := feedPieces(t, stream, cuts...)
		check(fmt.Sprintf("reads of %d bytes", step), got, err)
	}
}

// TestRespStreamCarriesOnlyTheIncomplete: the stream holds nothing between
// responses, and only the start of one whose end has not arrived.
func TestRespStreamCarriesOnlyTheIncomplete(t *testing.T) {
	var s respStream
	var rec respRec
	var r response
	one := []byte(respStreamCases[0])
	two := []byte(respStreamCases[1])
	if err := s.feed(one, false, &r, &rec); err != nil || s.part != nil || len(rec.got) != 1 {
		t.Fatalf("whole answer: %v, carried %q, %d answers", err, s.part, len(rec.got))
	}
	both := append(append([]byte(nil), one...), two[:10]...)
	if err := s.feed(both, false, &r, &rec); err != nil || string(s.part) != string(two[:10]) || len(rec.got) != 2 {
		t.Fatalf("an answer and a start: %v, carried %q, %d answers", err, s.part, len(rec.got))
	}
	if err := s.feed(two[10:], false, &r, &rec); err != nil || s.part != nil || len(rec.got) != 3 {
		t.Fatalf("the rest: %v, carried %q, %d answers", err, s.part, len(rec.got))
	}
	if err := s.feed(nil, true, &r, &rec); err != io.EOF {
		t.Fatalf("end between answers: %v", err)
	}
}

func TestRespStreamErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, err string }{
		{"status line", "HTTP/2 200 OK\r\n\r\n", "bad status line"},
		{"status", "HTTP/1.1 2x0 OK\r\n\r\n", "bad status line"},
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad content-length"},
		{"chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"},
		{"chunk end", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n", "bad chunk end"},
		{"cut in the headers", "HTTP/1.1 200 OK\r\nContent-Le", "unexpected EOF"},
		{"cut in the body", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", "unexpected EOF"},
		{"header line too long", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxRespLine+1), "too long"},
		{"answer too long", "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n" + strings.Repeat("a", maxRespPart), "longer than 1 MiB"},
	} {
		got, err := feedPieces(t, []byte(tc.in), len(tc.in)/2)
		if err == nil || err == io.EOF || !strings.Contains(err.Error(), tc.err) || len(got) != 0 {
			t.Errorf("%s: %v, %q", tc.name, err, got)
		}
	}
	// The sink's error stops the feed and is returned.
	var s respStream
	var r response
	stop := errors.New("stop")
	if err := s.feed([]byte(respStreamCases[0]+respStreamCases[0][:5]), false, &r, stopSink{stop}); err != stop || s.part != nil {
		t.Fatalf("sink error: %v, carried %q", err, s.part)
	}
}

type stopSink struct{ err error }

func (s stopSink) response(*response) error { return s.err }

// FuzzRespStream: whatever the bytes and however they are cut into reads,
// a respStream passes on exactly the responses readResponse reads from the
// same stream before its first error.
func FuzzRespStream(f *testing.F) {
	for i, c := range respStreamCases {
		f.Add([]byte(c), uint8(i))
	}
	f.Add([]byte(strings.Join(respStreamCases, "")), uint8(3))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"), uint8(0))
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		if len(stream) > 16<<10 {
			return // the line bounds of the two differ past 64 KiB
		}
		want := respReference(stream)
		var cuts []int
		for i := int(step) + 1; i < len(stream); i += int(step) + 1 {
			cuts = append(cuts, i)
		}
		got, _ := feedPieces(t, stream, cuts...)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("cut every %d bytes:\n got %q\nwant %q", step+1, got, want)
		}
	})
}
