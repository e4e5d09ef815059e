package conformance

import (
	"fmt"
	"strings"
	"time"
)

// resumeCases is X-04, the resume point a Cometify stream sends first.
func resumeCases() []ruleCase {
	return []ruleCase{{
		rule: "X-04",
		what: "a Cometify stream's first frame / first SSE id is the LIST in id form, before any push; resuming from it loses nothing and repeats nothing",
		run:  checkResumePoint,
	}}
}

func checkResumePoint(t *caseT) {
	x, y := ident(), ident()
	w := t.watchCF(x)
	t.pushID(x, "x5", 5)
	streams := []string{viaWS, viaSSE}
	var fns []func()
	for _, via := range streams {
		fns = append(fns, func() {
			// Plain form: each identifier's highest id when connecting.
			s := t.openCF(via, strings.ToUpper(x)+","+y, cfOpen{})
			s.expectSince(idList(x, 5, y, 0), "plain "+strings.ToUpper(x)+","+y+" before any push")
			s.expectNothing(300*time.Millisecond, "after the resume point")
			// Id form: the ids as given, lowercase, then the backlog.
			s = t.openCF(via, idList(strings.ToUpper(y), 0, x, 3), cfOpen{})
			s.expectSince(idList(y, 0, x, 3), "id form")
			s.skipGaps = true
			s.expect(atOnce, []cfItem{pushed(x, 5, "x5")}, "the backlog after the resume point")
			s = t.openCF(via, idList(x, 9), cfOpen{})
			s.expectSince(idList(x, 9), "id form above the newest id")
		})
		// A listener that drops before its first push resumes from its
		// resume point, on any transport, with nothing lost or repeated.
		for _, then := range ezTransports {
			fns = append(fns, func() { resumeBeforeFirstPush(t, via, then) })
		}
	}
	t.parallel(fns...)
	w.quiet()
}

func resumeBeforeFirstPush(t *caseT, first, then string) {
	z := ident()
	t.push(z, "old")
	s := t.openCF(first, z, cfOpen{})
	s.expectSince(idList(z, 1), "plain "+z+" after one push")
	since := s.resume
	s.close()
	a := t.push(z, "a")
	b := t.push(z, "b")
	var r *cfStream
	if then == viaSSE && first == viaSSE {
		// What a browser's EventSource does: the same URL, Last-Event-ID.
		r = t.openCF(then, z, cfOpen{lastEventID: since})
	} else {
		r = t.openCF(then, since, cfOpen{})
	}
	ctx := fmt.Sprintf("dropped %s before its first push, resumed over %s from %q", first, then, since)
	r.expect(atOnce, []cfItem{pushed(z, a, "a"), pushed(z, b, "b")}, ctx)
	r.expectNothing(300*time.Millisecond, ctx+", after the backlog")
}
