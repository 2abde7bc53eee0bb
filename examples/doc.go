// Package examples holds runnable strata recipes, one directory each
// (hello, debian, multistage). It has no code: its test loads every
// recipe and asserts that it is valid.
package examples
