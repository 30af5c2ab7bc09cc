extension LockKey {
    /// The key of an advisory lock row in `pg_locks` (`locktype = 'advisory'`), from its
    /// `classid`, `objid` and `objsubid` columns; nil if `objsubid` is neither 1 nor 2.
    ///
    /// `classid` and `objid` are `oid` columns, unsigned 32-bit values:
    ///
    /// - `objsubid = 1`, the bigint form: `classid` holds the key's high 32 bits and `objid`
    ///   its low 32 bits, so the key is `(classid << 32) | objid` read as a signed `Int64`
    ///   (a negative key has `classid` ≥ 2^31);
    /// - `objsubid = 2`, the two-int form: `classid` is the namespace and `objid` the id,
    ///   each read as a signed `Int32`.
    ///
    /// To read them with a driver that has no `oid` type, select `classid::int8` and
    /// `objid::int8` and convert each with `UInt32(_:)`: they are never negative.
    public init?(classid: UInt32, objid: UInt32, objsubid: Int16) {
        switch objsubid {
        case 1:
            self = .int64(Int64(bitPattern: UInt64(classid) << 32 | UInt64(objid)))
        case 2:
            self = .pair(namespace: Int32(bitPattern: classid), id: Int32(bitPattern: objid))
        default:
            return nil
        }
    }

    /// How `pg_locks` shows this key: its `classid`, `objid` and `objsubid` columns; the
    /// inverse of ``init(classid:objid:objsubid:)``.
    public var pgLocksIdentity: (classid: UInt32, objid: UInt32, objsubid: Int16) {
        switch storage {
        case .int64(let value):
            let bits = UInt64(bitPattern: value)
            return (UInt32(truncatingIfNeeded: bits >> 32), UInt32(truncatingIfNeeded: bits), 1)
        case .pair(let namespace, let id):
            return (UInt32(bitPattern: namespace), UInt32(bitPattern: id), 2)
        }
    }
}
