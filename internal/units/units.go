// Package units writes sizes as strata's progress says them.
package units

import "fmt"

// Bytes is n bytes in binary units with one decimal, as progress shows
// layer sizes: "122 B", "4.0 KiB", "45.3 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
