// Package cache is strata's build cache: a key per step computed from
// exactly what determines the step's result, stores that keep the results
// (Local under the state root, Registry in a registry repository shared by
// CI runners, Dir in a local directory a CI system keeps between jobs),
// the explanation of a miss, and garbage collection. Compression is never
// part of a key: Local also keeps layers re-encoded for output (Encoded).
//
// Keys chain on the parent's result — the diffIDs of every layer below —
// not on the parent's key, so a step that re-runs and produces a
// byte-identical layer leaves every later step cached (early cutoff).
//
// Input: Inputs per step. Output: Entries — one record per cached step,
// with the Layer it committed — looked up and recorded through a Cache,
// which asks the local store, then every --cache-from store, and writes to
// the local store and every --cache-to store.
package cache
