package conformance

// allCases lists every case in spec order: the order of docs/spec.md's sections
// and, within one, of its rule ids. A new rule group adds its function
// here, in its section's place.
func allCases() []ruleCase {
	var all []ruleCase
	for _, group := range [][]ruleCase{
		commonCases(),
		drainCases(), // C-11, printed in its place, run last
		hardeningCases(),
		accountCases(),
		ezWriteCases(),
		ezReadCases(),
		cfPushCases(),
		cfListenCases(),
		gapCases(),
		statsCases(),
		resumeCases(),
	} {
		all = append(all, group...)
	}
	return all
}
