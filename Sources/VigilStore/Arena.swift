import Foundation

/// A growable byte buffer with a gentle growth factor (×1.25), so compressed series do not carry
/// the up-to-2× slack of array doubling. One per series; the store's memory figure counts its
/// capacity.
final class Arena {
    private(set) var base: UnsafeMutablePointer<UInt8>?
    private(set) var count = 0
    private(set) var capacity = 0

    init(capacity: Int = 0) {
        if capacity > 0 { grow(to: capacity) }
    }

    deinit { free(base) }

    @inline(__always)
    func append(_ byte: UInt8) {
        if count == capacity { grow(to: max(64, capacity + capacity / 4)) }
        base![count] = byte
        count += 1
    }

    private func grow(to newCapacity: Int) {
        guard let pointer = realloc(base, newCapacity) else { fatalError("out of memory growing a series buffer") }
        base = pointer.assumingMemoryBound(to: UInt8.self)
        capacity = newCapacity
    }

    /// Removes the first `n` bytes.
    func removeFirst(_ n: Int) {
        guard n > 0, let base else { return }
        let rest = count - n
        if rest > 0 { memmove(base, base + n, rest) }
        count = rest
        if capacity > 256 && count < capacity / 2 {
            grow(to: max(64, count + count / 4))
        }
    }

    /// Drops spare capacity (used when a series goes quiet).
    func shrinkToFit() {
        if capacity > count + 16 { grow(to: max(16, count)) }
    }
}

/// Bits written MSB-first into an `Arena`; the at most 7 bits not yet forming a byte stay in
/// `pending` so readers of the open chunk can see them.
struct BitWriter {
    var pending: UInt64 = 0
    var pendingBits = 0

    @inline(__always)
    mutating func write(_ value: UInt64, _ n: Int, to arena: Arena) {
        if n > 56 {
            write(value >> 32, n - 32, to: arena)
            write(value & 0xffff_ffff, 32, to: arena)
            return
        }
        pending = (pending &<< UInt64(n)) | (value & ((1 &<< UInt64(n)) &- 1))
        pendingBits += n
        while pendingBits >= 8 {
            pendingBits -= 8
            arena.append(UInt8(truncatingIfNeeded: pending &>> UInt64(pendingBits)))
        }
        pending &= (1 &<< UInt64(pendingBits)) &- 1
    }

    /// The pending bits as the high bits of one byte.
    var pendingByte: UInt8 {
        pendingBits == 0 ? 0 : UInt8(truncatingIfNeeded: pending &<< UInt64(8 - pendingBits))
    }

    /// Pads to a byte boundary.
    mutating func flush(to arena: Arena) {
        if pendingBits > 0 {
            arena.append(pendingByte)
            pending = 0
            pendingBits = 0
        }
    }
}

/// Reads bits MSB-first. After the last byte comes `tail` (the open chunk's pending bits), then zeros.
struct BitReader {
    private let base: UnsafePointer<UInt8>
    private let end: Int
    private let tail: UInt8
    private var position = 0
    private var cache: UInt64 = 0
    private var cacheBits = 0

    init(_ base: UnsafePointer<UInt8>, count: Int, tail: UInt8 = 0) {
        self.base = base
        self.end = count
        self.tail = tail
    }

    @inline(__always)
    private mutating func refill() {
        while cacheBits <= 56 {
            let byte: UInt64
            if position < end { byte = UInt64(base[position]) } else if position == end { byte = UInt64(tail) } else { byte = 0 }
            position += 1
            cache = (cache &<< 8) | byte
            cacheBits += 8
        }
    }

    @inline(__always)
    mutating func read(_ n: Int) -> UInt64 {
        if n > 56 { return readWide(n) }
        if cacheBits < n { refill() }
        cacheBits -= n
        return (cache &>> UInt64(cacheBits)) & ((1 &<< UInt64(n)) &- 1)
    }

    /// More than 56 bits: two reads (kept out of line so `read` inlines).
    @inline(never)
    private mutating func readWide(_ n: Int) -> UInt64 {
        let high = read(n - 32)
        return (high << 32) | read(32)
    }

    @inline(__always)
    mutating func readBit() -> Bool {
        if cacheBits == 0 { refill() }
        cacheBits -= 1
        return (cache &>> UInt64(cacheBits)) & 1 == 1
    }
}
