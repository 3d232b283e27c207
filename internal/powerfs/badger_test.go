package powerfs

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

type badgerTxn = badger.Txn

// badgerKeys is how many keys the Badger helpers write and read.
const badgerKeys = 200

func badgerKey(i int) []byte   { return fmt.Appendf(nil, "key-%04d", i) }
func badgerValue(i int) []byte { return fmt.Appendf(nil, "value of key %d", i) }

// openBadger opens Badger with small files, as the ledger does.
func openBadger(dir string, syncWrites bool) (*badger.DB, error) {
	return badger.Open(badger.DefaultOptions(dir).
		WithLogger(nil).
		WithSyncWrites(syncWrites).
		WithMemTableSize(8 << 20).
		WithValueLogFileSize(16 << 20).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20))
}
