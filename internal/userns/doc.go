// Package userns runs strata rootless: a user without root gets a user
// namespace, where it is uid 0 with the capabilities a build needs over
// what it owns, and a mount namespace of its own for the build's overlay
// mounts.
//
// The parent side (Check, Run) finds the user's subordinate id ranges in
// /etc/subuid and /etc/subgid, checks every prerequisite before anything
// runs (a *PrereqError says which is missing and how to fix it), and runs
// this program again (/proc/self/exe, same arguments) in a new user and
// mount namespace whose id maps newuidmap and newgidmap write: the user's
// own id as 0, then the subordinate ranges from 1 on. It waits for it,
// forwarding SIGINT, SIGTERM, SIGHUP and SIGQUIT, and returns its exit code.
//
// The child side (Resume, called first in main) waits until its maps are
// written, then executes itself once more: capabilities are computed at
// execve, and only then is it uid 0 in the namespace. It makes every mount
// private, so nothing the build mounts propagates out, and dies with its
// parent.
//
// Inside and CurrentMaps tell any package whether it runs in such a
// namespace and which ids it can represent there; UnmappedError names a
// file whose owner it cannot.
//
// Input: the user's ids, /etc/subuid, /etc/subgid, the sysctls that
// restrict user namespaces. Output: a namespaced copy of this process and
// its exit code.
package userns
