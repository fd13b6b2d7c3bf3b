// Go's sync.Pool Get+Put of a pointer to a small struct, touched between Get and Put: the pool
// that membench alloc's `object` allocator (ObjectPool lease+release) is set against.
//
//	go run main.go ROUNDS SECONDS
//
// Prints one line per round: ns per Get+Put pair on one goroutine (GOMAXPROCS=1).
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

type item struct {
	length int
	words  [4]uint64
}

var pool = sync.Pool{New: func() any { return new(item) }}

func pairs(n int) {
	for i := 0; i < n; i++ {
		it := pool.Get().(*item)
		it.length++
		it.length = 0 // the reset, as ObjectPool's runs on every return
		pool.Put(it)
	}
}

func main() {
	runtime.GOMAXPROCS(1)
	rounds, _ := strconv.Atoi(os.Args[1])
	seconds, _ := strconv.ParseFloat(os.Args[2], 64)
	pairs(1000)
	for r := 0; r < rounds; r++ {
		total := 0
		start := time.Now()
		deadline := start.Add(time.Duration(seconds * float64(time.Second)))
		for time.Now().Before(deadline) {
			pairs(4096)
			total += 4096
		}
		elapsed := time.Since(start)
		fmt.Printf("%d,%.3f\n", r, float64(elapsed.Nanoseconds())/float64(total))
	}
}
