package protocol

import (
	"fmt"
	"sync"
	"testing"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// BenchmarkRealPublish is closed-loop EZComet /write over loopback from
// 16 keep-alive connections, fsync on, on the real engine (one loop),
// protocol and store, with 8 WebSocket readers of the channel: with the
// store's AfterBatch hook (one task per committed group per loop) and
// without it (one task per message, as before issue 16).
func BenchmarkRealPublish(b *testing.B) {
	const conns, readers = 16, 8
	for _, hooked := range []bool{true, false} {
		b.Run(fmt.Sprintf("afterbatch=%v", hooked), func(b *testing.B) {
			so := persist.Options{SweepInterval: -1}
			if !hooked {
				so.AfterBatch = func() {}
			}
			f := &realAllocFixture{}
			f.rs = startRealServer(b, so, engine.Options{Loops: 1})
			if _, err := f.rs.store.AddAccount("john"); err != nil {
				b.Fatal(err)
			}
			if err := f.rs.store.SetMaxListenersPerIP("john", 10000); err != nil {
				b.Fatal(err)
			}
			f.acct, _ = f.rs.store.AccountByName([]byte("john"))
			for range readers {
				c, br, st := f.rs.openWS("127.0.0.1", "/read/ws?qname=john-fan")
				if st != 101 {
					b.Fatal(st)
				}
				b.Cleanup(func() { c.Close() })
				go (&streamReader{c: c, r: br}).run()
			}
			var wg sync.WaitGroup
			per := b.N/conns + 1
			b.ResetTimer()
			for g := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rc := f.rs.rawClient()
					body := fmt.Sprintf("api_key=%s&qname=john-fan&msg=hello&tick=g%02d", f.acct.APIKey, g)
					at := len(body)
					body += "0000000"
					req := fmt.Appendf(nil, "POST /write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
					at += len(req) - len(body)
					for i := range per {
						putDigits(req[at:at+7], i)
						if st, _ := rc.roundTrip(req); st != 200 {
							b.Errorf("publish: %d", st)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(per*conns)/b.Elapsed().Seconds(), "publish/s")
		})
	}
}
