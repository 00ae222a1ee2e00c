//go:build !race

package extract

// raceEnabled says the race detector is on, which multiplies memory use
// and slows the code down.
const raceEnabled = false
