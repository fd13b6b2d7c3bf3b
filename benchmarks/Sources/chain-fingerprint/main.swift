// The fingerprint of the chain one thread of `membench run --pool direct` writes, from
// MembenchKit itself:
//
//   chain-fingerprint SIZE_BYTES STRIDE_BYTES GROUP_BYTES [random|zero [SEED]]
//
// prints the FNV-1a hash of every slot's offset from the start of the buffer, in walking order,
// as the reference chase prints it, so that benchmarks/run can check the two walk one layout.
#if canImport(Glibc)
import Glibc
#endif
import MembenchKit

/// Writes `message` to standard error and exits 64.
func refuse(_ message: String) -> Never {
    _ = (message + "\n").withCString { write(2, $0, strlen($0)) }
    exit(64)
}

let arguments = CommandLine.arguments
guard arguments.count == 6, let size = Int(arguments[1]), let stride = Int(arguments[2]), let group = Int(arguments[3]),
      stride >= 8, stride % 8 == 0, stride <= 1 << 20, group >= stride, group % stride == 0, size >= group else {
    refuse("usage: chain-fingerprint SIZE STRIDE GROUP random|zero SEED")
}
guard let offsets = SlotLayout.Offsets(rawValue: arguments[4]) else {
    refuse("chain-fingerprint: offsets are random or zero")
}
guard let seed = UInt64(arguments[5]) else { refuse("chain-fingerprint: the seed is a whole number") }
let groups = size / group
let base = UnsafeMutableRawPointer.allocate(byteCount: groups * group, alignment: 4096)
defer { base.deallocate() }
// As membench run --pool direct: one thread, groups one after another from the base.
let chain = Chain.build(groups: (0..<groups).map { base + $0 * group }, groupBytes: group,
                        layout: SlotLayout(stride: stride, offsets: offsets, thread: 0, threads: 1, seed: seed),
                        pattern: .chase, seed: seed)
var layout: UInt64 = 0xcbf2_9ce4_8422_2325
var slot = chain.start
for _ in 0..<chain.slots {
    let offset = UInt64(UInt(bitPattern: slot) - UInt(bitPattern: base))
    for byte in 0..<8 {
        layout ^= (offset >> (8 * UInt64(byte))) & 0xff
        layout = layout &* 0x100_0000_01b3
    }
    slot = slot.load(as: UnsafeRawPointer.self)
}
print(String(layout, radix: 16).leftPadded(to: 16))

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
