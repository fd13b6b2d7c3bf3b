import Testing
@testable import NUMA

@Suite("NodeSet and CPUSet list syntax")
struct NodeSetTests {
    @Test("lists round-trip through the compact form", arguments: [
        ("0", [0], "0"), ("0,2", [0, 2], "0,2"), ("1-3", [1, 2, 3], "1-3"),
        ("0-2,5,7-8", [0, 1, 2, 5, 7, 8], "0-2,5,7-8"), ("3,1,2", [1, 2, 3], "1-3"),
        ("64,65,200", [64, 65, 200], "64-65,200"), ("5-5", [5], "5"),
    ])
    func roundTrip(text: String, ids: [Int], printed: String) throws {
        let set = try NodeSet(parsing: text)
        #expect(set.ids == ids)
        #expect(set.description == printed)
        #expect(try NodeSet(parsing: set.description) == set)
    }

    @Test("all means the given set")
    func all() throws {
        #expect(try NodeSet(parsing: "all", all: [0, 3]) == [0, 3])
        #expect(try NodeSet(parsing: "all") == Topology.current.allowedNodes)
    }

    @Test("malformed lists are refused with a message naming them", arguments: [
        "", "0-", "3-1", "-1", "a", "1,,2", "1-2-3", " ", "0x1", "1.5", "99999",
    ])
    func malformed(text: String) {
        #expect {
            try NodeSet(parsing: text)
        } throws: { error in
            guard let error = error as? NUMAError else { return false }
            return error.errno == 22 && error.message.contains("invalid node list")
        }
    }

    @Test("sets beyond 64 ids keep every member")
    func wide() {
        var set = NodeSet()
        for id in stride(from: 0, to: 1000, by: 7) { set.insert(id) }
        #expect(set.count == 143)
        #expect(set.contains(994) && !set.contains(995))
        set.remove(994)
        #expect(!set.contains(994))
        #expect(set.union([995]).contains(995))
        #expect(set.intersection([0, 7, 8]) == [0, 7])
        #expect(([0, 7] as NodeSet).isSubset(of: set))
    }

    @Test("CPU lists parse the same syntax")
    func cpus() throws {
        #expect(try CPUSet(parsing: "0-3,8").ids == [0, 1, 2, 3, 8])
        #expect(throws: NUMAError.self) { try CPUSet(parsing: "3-") }
    }
}
