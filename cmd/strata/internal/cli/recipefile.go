package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratabuild/strata/internal/inputfile"
	"github.com/stratabuild/strata/recipe"
)

// stdinName is the file part of the positions of a recipe read from
// stdin (-f -).
const stdinName = "<stdin>"

// checkStdinContext refuses -f - (the recipe on stdin, as docker build
// -f - reads the Dockerfile) without CONTEXT: there is no recipe
// directory to default to.
func checkStdinContext(file string, args []string) error {
	if file == "-" && len(args) == 0 {
		return errors.New("-f -: the recipe is read from stdin, so give CONTEXT too, the directory copy sources are read from (-f - DIR)")
	}
	return nil
}

// readRecipe reads the recipe file, or stdin for "-". A recipe found in
// the context (explicit false: no -f) must be a file inside it, so that a
// symlink cannot make strata read, and echo, a file elsewhere.
func readRecipe(ctx context.Context, stdin io.Reader, file, context string, explicit bool) ([]byte, error) {
	if file == "-" {
		data, err := readStdin(ctx, stdin)
		switch {
		case ctx.Err() != nil:
			return nil, &exitError{code: ExitBuildFailed, err: errors.New("interrupted: stopped while reading the recipe from stdin")}
		case err != nil:
			return nil, usageErr("reading the recipe from stdin: %v", err)
		case len(data) > recipe.MaxSize:
			return nil, usageErr("the recipe on stdin is larger than %d bytes: a recipe is YAML text of a few kilobytes", recipe.MaxSize)
		}
		return data, nil
	}
	if _, err := os.Lstat(file); errors.Is(err, os.ErrNotExist) {
		if explicit {
			return nil, usageErr("recipe %s does not exist", file)
		}
		if yml := filepath.Join(context, "strata.yml"); exists(yml) {
			return nil, usageErr("no recipe: %s does not exist; found strata.yml: strata reads strata.yaml (or pass -f %s)", file, yml)
		}
		return nil, usageErr("no recipe: %s does not exist (give CONTEXT, the directory holding strata.yaml, or the recipe with -f)", file)
	} else if err == nil && !explicit {
		if err := inputfile.InsideDir(file, context); err != nil {
			return nil, usageErr("recipe: %v (give it with -f to use it anyway)", err)
		}
	}
	data, err := inputfile.Read(file, inputfile.Options{Max: recipe.MaxSize, What: "recipe"})
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return data, nil
}

// readStdin reads the recipe from stdin, up to one byte more than
// recipe.MaxSize, or until ctx ends (^C while what writes it hangs): the
// read itself goes on in the background until strata exits.
func readStdin(ctx context.Context, stdin io.Reader) ([]byte, error) {
	type read struct {
		data []byte
		err  error
	}
	done := make(chan read, 1)
	go func() {
		data, err := io.ReadAll(io.LimitReader(stdin, recipe.MaxSize+1))
		done <- read{data, err}
	}()
	select {
	case r := <-done:
		return r.data, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// exists reports whether path names a file (or a link).
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// dockerfileHint says how to turn the recipe read from file into one, if
// it is a Dockerfile: its first word out of a comment is FROM or ARG,
// which no YAML recipe starts with. "" if it is not.
func dockerfileHint(data []byte, file string) string {
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if word := strings.ToUpper(strings.Fields(line)[0]); word != "FROM" && word != "ARG" { // docker takes from too
			return ""
		}
		switch {
		case file == "-":
			return "the recipe on stdin looks like a Dockerfile: save it as Dockerfile, then `strata convert Dockerfile > strata.yaml` writes a recipe from it"
		case filepath.Base(file) == "strata.yaml": // converted into itself, the shell would empty it first
			df := filepath.Join(filepath.Dir(file), "Dockerfile")
			return fmt.Sprintf("%s looks like a Dockerfile: `mv %s %s && strata convert %s > %s` writes a recipe from it", file, file, df, df, file)
		default:
			return fmt.Sprintf("%s looks like a Dockerfile: `strata convert %s > %s` writes a recipe from it", file, file, filepath.Join(filepath.Dir(file), "strata.yaml"))
		}
	}
	return ""
}
