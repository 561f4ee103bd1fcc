/// A binary min-heap of (due, slot) pairs: one structure serves the deadlines of every agent.
///
/// Written here rather than taken from swift-collections' `Heap` because `RollcallCore` has no
/// dependencies at all (the agent links it, and `scripts/fuzz` compiles its sources alone with
/// `swiftc`); it is forty lines, and only `push`, `top` and `pop` are needed.
///
/// Entries are never removed early: when an agent's deadline moves, the owner pushes a new
/// entry and ignores the stale one when it surfaces. Each agent therefore has at most a couple
/// of entries, and a heartbeat does not touch the heap at all.
struct DeadlineHeap {
    struct Entry {
        var due: Millis
        var slot: Int32
    }

    private(set) var entries: [Entry] = []

    var count: Int { entries.count }
    var top: Entry? { entries.first }

    mutating func push(_ entry: Entry) {
        entries.append(entry)
        var i = entries.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard entries[i].due < entries[parent].due else { break }
            entries.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let first = entries.first else { return nil }
        let last = entries.removeLast()
        guard !entries.isEmpty else { return first }
        entries[0] = last
        var i = 0
        let n = entries.count
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var smallest = i
            if l < n, entries[l].due < entries[smallest].due { smallest = l }
            if r < n, entries[r].due < entries[smallest].due { smallest = r }
            if smallest == i { break }
            entries.swapAt(i, smallest)
            i = smallest
        }
        return first
    }
}
