import AWSWire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Turns the `load` command's source arguments into the exports to read, in order.
public enum ExportSources {
    /// Expands arguments (file, glob, s3://bucket/key, s3://bucket/prefix/) into locations, in
    /// order (a prefix: every object in key order), with sizes when known. Throws ExportError
    /// for a missing file, a glob that matches nothing, or an S3 error.
    ///
    /// `s3://bucket/key` names one object when that key exists; otherwise it is read as a key
    /// prefix (as Redshift UNLOAD's `TO 's3://bucket/day_'` writes `day_0000_part_00.gz`, ...).
    /// Keys ending in `/` (folder markers) are skipped.
    public static func expand(_ arguments: [String], client: AWSClient?) async throws
        -> [(location: ExportLocation, size: Int64?)]
    {
        var result: [(location: ExportLocation, size: Int64?)] = []
        for argument in arguments {
            if argument.hasPrefix("s3://") {
                result += try await expandS3(argument, client: client)
            } else if argument.contains(where: { $0 == "*" || $0 == "?" || $0 == "[" }) {
                result += try expandGlob(argument)
            } else {
                result.append((.file(path: argument), try fileSize(argument)))
            }
        }
        return result
    }

    /// Splits `s3://bucket/rest` into bucket and key (or prefix).
    public static func parseS3(_ argument: String) -> (bucket: String, key: String)? {
        guard argument.hasPrefix("s3://") else { return nil }
        let rest = argument.dropFirst(5)
        let bucket: Substring
        let key: Substring
        if let slash = rest.firstIndex(of: "/") {
            bucket = rest[..<slash]
            key = rest[rest.index(after: slash)...]
        } else {
            bucket = rest
            key = ""
        }
        guard !bucket.isEmpty else { return nil }
        return (String(bucket), String(key))
    }

    static func fileSize(_ path: String) throws(ExportError) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let reason = errno == ENOENT ? "no such file" : String(cString: strerror(errno))
            throw ExportError(source: path, message: "cannot read: \(reason)")
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            throw ExportError(source: path, message: "is a directory, not an export file (use a glob such as dir/*.gz)")
        }
        return (info.st_mode & S_IFMT) == S_IFREG ? Int64(info.st_size) : nil
    }

    static func expandGlob(_ pattern: String) throws(ExportError) -> [(location: ExportLocation, size: Int64?)] {
        var matches = glob_t()
        defer { globfree(&matches) }
        let rc = glob(pattern, 0, nil, &matches)
        if rc == GLOB_NOMATCH {
            throw ExportError(source: pattern, message: "the pattern matches no file")
        }
        guard rc == 0 else {
            throw ExportError(source: pattern, message: "cannot expand the pattern (glob error \(rc))")
        }
        var result: [(location: ExportLocation, size: Int64?)] = []
        for index in 0..<Int(matches.gl_pathc) {
            guard let cPath = matches.gl_pathv[index] else { continue }
            let path = String(cString: cPath)
            var info = stat()
            if stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR { continue }
            result.append((.file(path: path), try fileSize(path)))
        }
        if result.isEmpty {
            throw ExportError(source: pattern, message: "the pattern matches no file")
        }
        return result
    }

    static func expandS3(_ argument: String, client: AWSClient?) async throws(ExportError)
        -> [(location: ExportLocation, size: Int64?)]
    {
        guard let (bucket, key) = parseS3(argument) else {
            throw ExportError(
                source: argument, message: "not an S3 location: expected s3://bucket/key or s3://bucket/prefix/")
        }
        guard let client else {
            throw ExportError(source: argument, message: "an s3:// source needs AWS configuration")
        }
        let objects: [S3Object]
        do {
            objects = try await client.s3ListObjects(bucket: bucket, prefix: key)
        } catch {
            throw ExportError(source: argument, message: "cannot list: \(error)")
        }
        if !key.isEmpty && !key.hasSuffix("/"), let exact = objects.first(where: { $0.key == key }) {
            return [(.s3(bucket: bucket, key: exact.key), exact.size)]
        }
        let files = objects.filter { !$0.key.hasSuffix("/") }
        if files.isEmpty {
            throw ExportError(source: argument, message: "no S3 object with this key or under this prefix")
        }
        return files.map { (.s3(bucket: bucket, key: $0.key), $0.size) }
    }
}
