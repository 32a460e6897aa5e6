// Searches the gallery of a running Glimpse for a text:
//
//	go run ./clients/go/examples/search "a dog"    # GLIMPSE_URL, default http://localhost:8000
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	glimpse "glimpse.local/clients/go"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, `usage: search "a text query"`)
		os.Exit(2)
	}
	hits, err := glimpse.New("").SearchImages(context.Background(), strings.Join(os.Args[1:], " "), 5)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, h := range hits {
		fmt.Printf("%d %s %.3f\n", h.GetRank(), h.GetImageId(), h.GetRankScore()) // the score the order follows
	}
}
