package danube

const (
	fnvOffset64 = 0xcbf29ce484222325
	fnvPrime64  = 0x100000001b3
)

// fnv1a64 is the FNV-1a 64-bit hash the official clients route keys with, so a
// key lands on the same partition whichever client produced it.
func fnv1a64(key string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= fnvPrime64
	}
	return h
}

// PartitionForKey returns the partition (0..partitions-1) the official clients
// choose for key: FNV-1a 64 of the key bytes modulo the partition count. It
// returns 0 when partitions < 1.
func PartitionForKey(key string, partitions int) int {
	if partitions < 1 {
		return 0
	}
	return int(fnv1a64(key) % uint64(partitions))
}
