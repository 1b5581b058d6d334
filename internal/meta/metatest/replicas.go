package metatest

import "testing"

// Replicas opens n stores sharing one new, empty database, as n registry
// replicas (or processes) would, and closes them when t ends (t.Cleanup).
// The suites for the interfaces beyond meta.Store (RunRetention,
// RunPolicy, RunBuilds, RunGC, RunScrub, RunTlog) take one: most subtests
// open a single store, the concurrency subtests open two and check that
// writes through both keep the contract.
type Replicas[S any] func(t *testing.T, n int) []S

// subtest is one named test of a suite.
type subtest[S any] struct {
	name string
	fn   func(t *testing.T, open Replicas[S])
}

// runSuite runs each subtest, checking that open returns what was asked.
func runSuite[S any](t *testing.T, open Replicas[S], tests []subtest[S]) {
	t.Helper()
	checked := func(t *testing.T, n int) []S {
		t.Helper()
		ss := open(t, n)
		if len(ss) != n {
			t.Fatalf("Replicas returned %d stores, want %d", len(ss), n)
		}
		return ss
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, checked) })
	}
}

// one opens a single store.
func one[S any](t *testing.T, open Replicas[S]) S {
	t.Helper()
	return open(t, 1)[0]
}

// concurrently runs fn(0) ... fn(n-1) in goroutines and waits for them.
func concurrently(n int, fn func(i int)) {
	done := make(chan struct{}, n)
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			fn(i)
		}()
	}
	for range n {
		<-done
	}
}
