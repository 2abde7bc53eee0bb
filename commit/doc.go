// Package commit turns layer tars into OCI images and moves images in and
// out of strata.
//
// Inputs: an uncompressed layer tar stream (from layers.Diff), a base image
// reference ("scratch", a registry reference, "oci-layout://DIR[:TAG|@sha256:…]",
// "docker-archive://FILE"), and the image config and history a recipe sets.
//
// Outputs: compressed layer blobs in a directory (WriteLayer, or a
// Compressor in the background, off a build's critical path), an OCI image
// assembled on a base (Image), and that image written as an OCI image layout
// (WriteOCILayout), a `docker save` tarball (WriteDockerArchive), loaded into
// a docker daemon (Load) or pushed to registries (Push).
//
// Base images are untrusted: VerifyImage checks that a base's config lists
// one diff_id per layer and that a blob listed twice is claimed the same
// way both times, BaseLayers hands out its layers with the diffIDs
// the config claims, and SaveBlob, which keeps a base layer's blob under
// the state root, checks its content against that claim as it writes it
// (StreamLayer does too, unpacking it in the same pass), and records what
// it found beside the blob so that later processes need not read it again.
// gzip layers are inflated by an igzip process when there is one
// (internal/gunzip).
//
// Registry credentials come from DOCKER_AUTH_CONFIG, $REGISTRY_AUTH_FILE,
// the docker config ($DOCKER_CONFIG or ~/.docker/config.json) or else
// podman's auth.json, and their credential helpers (NewKeychain). TLS trusts the system roots, which SSL_CERT_FILE
// and SSL_CERT_DIR extend, and per registry the CAs and client
// certificates of its certs.d directories (CertDirs); a Transport in
// RegistryOptions replaces all that. Plain HTTP is spoken only to
// loopback hosts and hosts named in Insecure.
//
// The package knows nothing of overlay mounts, recipes or how a step runs.
package commit
