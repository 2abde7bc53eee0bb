package recipe

import (
	"strings"
	"testing"
)

func TestPredefinedPlatformArgs(t *testing.T) {
	src := `platforms: [linux/amd64, linux/arm64]
stages:
  - name: build
    from: scratch
    platform: ${BUILDPLATFORM}
    steps:
      - run: echo ${TARGETOS}/${TARGETARCH}${TARGETVARIANT} on ${BUILDOS}/${BUILDARCH} > /target
  - name: app
    from: scratch
    steps:
      - copy: /target
        from: build
        to: /target-${TARGETARCH}
`
	r, err := Parse("strata.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Platforms; len(got) != 2 || got[0].String() != "linux/amd64" || got[1].String() != "linux/arm64" {
		t.Errorf("Platforms = %v", got)
	}
	host := HostPlatform()
	arm, err := r.ForPlatform(Platform{OS: "linux", Arch: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if got := arm.Stages[0].Platform; got != host {
		t.Errorf("a stage on ${BUILDPLATFORM}: platform %v, want the host's %v", got, host)
	}
	cmd := arm.Stages[0].Steps[0].Run.Command
	if want := "echo linux/arm64 on linux/" + host.Arch; !strings.HasPrefix(cmd, want) {
		t.Errorf("run = %q, want it to start %q", cmd, want)
	}
	if got := arm.Stages[1].Steps[0].Copy.To; got != "/target-arm64" {
		t.Errorf("copy to = %q", got)
	}
	if got := r.Stages[1].Steps[0].Copy.To; got != "/target-"+host.Arch {
		t.Errorf("without a target the args describe the host: copy to = %q", got)
	}
}

func TestPlatformsErrors(t *testing.T) {
	_, err := Parse("strata.yaml", []byte("platforms: [linux/amd64, linux/x86_64, windows/amd64]\nfrom: scratch\nsteps: []\n"))
	for _, want := range []string{"strata.yaml:1:26: platforms: linux/amd64 is listed twice", "strata.yaml:1:40: platforms: bad platform \"windows/amd64\""} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
