// Package examples holds runnable strata recipes, one directory each
// (hello, debian, multistage), and CI set-ups that run strata (ci:
// GitHub Actions, GitLab CI, a Kubernetes Job). It has no code: its test
// loads every recipe and asserts that it is valid, and checks that each
// CI file asks for the privileges strata needs and runs the commands
// README documents.
package examples
