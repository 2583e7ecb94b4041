// etcd's own main (etcd/main.go) is in a module with relative replaces; this is that main.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
