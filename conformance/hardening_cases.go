package conformance

// hardeningCases are the wire-hardening rules of issue 15 that have no
// case of their own elsewhere: the per-IP connection cap (C-12), RFC 6455
// (C-13, one case per Autobahn section) and the data directory's modes
// (C-14). The C-03, C-07, C-08 and C-10 additions sit beside those rules'
// first cases in commonCases, to keep spec order.
func hardeningCases() []ruleCase {
	var all []ruleCase
	all = append(all, connCapCases()...)
	all = append(all, rfc6455Cases()...)
	all = append(all, dataDirCases()...)
	return all
}
