extension Dataset {
    /// Loads an MNIST-style pair of IDX files: unsigned-byte images and their labels.
    ///
    /// The image file starts with the big-endian magic number `0x00000803` (unsigned bytes, three dimensions) and
    /// the dimensions `count`, `rows`, `columns`, followed by `count x rows x columns` pixels. The label file starts
    /// with `0x00000801` and `count`, followed by one byte per label. Files must be decompressed first.
    ///
    /// Features are the raw pixel values 0-255 as Float, `rows x columns` per row; scale them with
    /// ``FeatureScaling``.
    ///
    /// - Parameters:
    ///   - images: The image file (e.g. `train-images-idx3-ubyte`).
    ///   - labels: The label file (e.g. `train-labels-idx1-ubyte`).
    /// - Returns: The rows, with `source` set to the image path.
    /// - Throws: ``CoreError/Code/fileNotFound`` or ``CoreError/Code/io`` when a file cannot be read;
    ///   ``CoreError/Code/invalidData`` for a wrong magic number (including gzip-compressed files), zero sizes,
    ///   a file shorter or longer than its header says, no images, or image and label counts that differ.
    /// - Complexity: O(n) in the file sizes.
    public static func loadIDX(images: String, labels: String) throws(CoreError) -> Dataset {
        let imageBytes = try FileIO.read(images)
        let labelBytes = try FileIO.read(labels)

        let imageHeader = try IDXHeader(imageBytes, path: images, dimensions: 3, what: "image")
        let labelHeader = try IDXHeader(labelBytes, path: labels, dimensions: 1, what: "label")
        let count = imageHeader.sizes[0]
        let rows = imageHeader.sizes[1]
        let columns = imageHeader.sizes[2]
        guard count > 0 else { throw CoreError(.invalidData, "\(images): the file holds no images") }
        guard rows > 0, columns > 0 else {
            throw CoreError(.invalidData, "\(images): images are \(rows)x\(columns); rows and columns must be positive")
        }
        guard labelHeader.sizes[0] == count else {
            throw CoreError(
                .invalidData,
                "\(images) holds \(count) images but \(labels) holds \(labelHeader.sizes[0]) labels; "
                    + "they must be a matching pair"
            )
        }
        try imageHeader.checkSize(imageBytes.count, path: images, what: "images of \(rows)x\(columns)")
        try labelHeader.checkSize(labelBytes.count, path: labels, what: "labels")

        let featureCount = rows * columns
        let pixels = count * featureCount
        let features = [Float](unsafeUninitializedCapacity: pixels) { buffer, initialized in
            imageBytes.withUnsafeBufferPointer { source in
                let start = source.baseAddress! + imageHeader.headerSize
                for i in 0..<pixels { buffer[i] = Float(start[i]) }
            }
            initialized = pixels
        }
        let labelValues = labelBytes[labelHeader.headerSize...].map { Int32($0) }
        return Dataset(features: features, labels: labelValues, featureCount: featureCount, source: images)
    }
}

/// The header of an IDX file of unsigned bytes: magic `0x00000800 | dimensions`, then one big-endian UInt32 size
/// per dimension.
private struct IDXHeader {
    var sizes: [Int]
    var headerSize: Int { 4 + 4 * sizes.count }

    init(_ bytes: [UInt8], path: String, dimensions: Int, what: String) throws(CoreError) {
        let expectedMagic = UInt32(0x0000_0800) | UInt32(dimensions)
        let headerSize = 4 + 4 * dimensions
        if bytes.count >= 2, bytes[0] == 0x1F, bytes[1] == 0x8B {
            throw CoreError(.invalidData, "\(path): the file is gzip-compressed; decompress it first (gunzip \(path))")
        }
        func word(_ offset: Int) -> UInt32 {
            UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
                | UInt32(bytes[offset + 3])
        }
        if bytes.count >= 4, word(0) != expectedMagic {
            let magic = word(0)
            var message = "\(path): not an IDX \(what) file: magic number \(hex(magic)), expected \(hex(expectedMagic))"
            if magic == 0x0000_0801 || magic == 0x0000_0803 {
                message += "; were the image and label files swapped?"
            }
            throw CoreError(.invalidData, message)
        }
        guard bytes.count >= headerSize else {
            throw CoreError(
                .invalidData,
                "\(path): too short for an IDX \(what) file (\(bytes.count) bytes; the header alone is \(headerSize))"
            )
        }
        sizes = (0..<dimensions).map { Int(word(4 + 4 * $0)) }
    }

    /// Checks that the file is exactly as long as the header says.
    func checkSize(_ actual: Int, path: String, what: String) throws(CoreError) {
        var expected = headerSize
        var overflow = false
        var body = 1
        for size in sizes {
            let (product, over) = body.multipliedReportingOverflow(by: size)
            body = product
            overflow = overflow || over
        }
        let (total, over) = expected.addingReportingOverflow(body)
        expected = total
        overflow = overflow || over
        let header = "the header says \(sizes[0]) \(what)"
        if overflow || actual < expected {
            let needed = overflow ? "more than \(Int.max)" : "\(expected)"
            throw CoreError(
                .invalidData,
                "\(path): truncated: \(header) (\(needed) bytes) but the file has \(actual) bytes"
            )
        }
        if actual > expected {
            throw CoreError(
                .invalidData,
                "\(path): \(header) (\(expected) bytes) but the file has \(actual - expected) extra bytes at the end"
            )
        }
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
