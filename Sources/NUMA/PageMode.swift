/// How a region is backed by pages.
public enum PageMode: String, Hashable, Sendable, CaseIterable, Codable {
    /// 4 KiB pages, with transparent huge pages turned off for the range (`MADV_NOHUGEPAGE`).
    case base = "4k"
    /// Transparent huge pages asked for (`MADV_HUGEPAGE`); the kernel may still use 4 KiB.
    case transparentHuge = "thp"
    /// Explicit 2 MiB huge pages from the hugetlb pool (`MAP_HUGETLB | MAP_HUGE_2MB`).
    case huge2M = "2m"
    /// Explicit 1 GiB huge pages from the hugetlb pool (`MAP_HUGETLB | MAP_HUGE_1GB`).
    case huge1G = "1g"

    /// The page size that placement is decided in.
    public var placementGranule: Int {
        switch self {
        case .base: PagePlacement.basePageSize
        case .transparentHuge, .huge2M: 2 << 20
        case .huge1G: 1 << 30
        }
    }

    var hugetlbSize: Int? {
        switch self {
        case .huge2M: 2 << 20
        case .huge1G: 1 << 30
        default: nil
        }
    }

    /// Free explicit huge pages of this size on the system, from sysfs; nil for other modes.
    public var freeHugePages: Int? {
        guard let size = hugetlbSize else { return nil }
        return SysFS.read("/sys/kernel/mm/hugepages/hugepages-\(size / 1024)kB/free_hugepages").flatMap { Int($0) } ?? 0
    }
}
