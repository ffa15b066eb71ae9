// Command compose-check loads a Compose file the way `docker compose config`
// does, with the compose-spec loader and its schema, and prints the resolved
// configuration as YAML. It exits with status 1 and the loader's message when
// the file is invalid. It needs no Docker engine.
//
// Usage: go run ./tools/compose-check [-profile NAME]... FILE
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type profileList []string

func (p *profileList) String() string     { return strings.Join(*p, ",") }
func (p *profileList) Set(v string) error { *p = append(*p, v); return nil }

func main() {
	var profiles profileList
	flag.Var(&profiles, "profile", "profile to enable; repeat for several")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: compose-check [-profile NAME]... FILE")
		os.Exit(2)
	}
	path, err := filepath.Abs(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	options, err := cli.NewProjectOptions(
		[]string{path},
		cli.WithOsEnv,
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithProfiles(profiles),
		cli.WithName("d2q"),
	)
	if err != nil {
		fail(err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := project.MarshalYAML()
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose-check:", err)
	os.Exit(1)
}
