import FlockCore
import Foundation
import Testing

@Suite struct IDXTests {
    /// A fresh temporary directory for one test.
    private let directory: String

    init() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("flock-idx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        directory = url.path
    }

    private func cleanUp() { try? FileManager.default.removeItem(atPath: directory) }

    private func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = directory + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    private static func imageFile(
        count: Int,
        rows: Int,
        columns: Int,
        pixels: [UInt8],
        magic: UInt32 = 0x0803
    )
        -> [UInt8]
    {
        bigEndian(magic) + bigEndian(UInt32(count)) + bigEndian(UInt32(rows)) + bigEndian(UInt32(columns)) + pixels
    }

    private static func labelFile(_ labels: [UInt8], magic: UInt32 = 0x0801) -> [UInt8] {
        bigEndian(magic) + bigEndian(UInt32(labels.count)) + labels
    }

    /// Three 2x3 images with distinct pixels, and their labels.
    private static let pixels: [UInt8] = (0..<18).map { UInt8($0 * 15) }
    private static let labels: [UInt8] = [7, 0, 9]

    private func writePair(images: [UInt8]? = nil, labels: [UInt8]? = nil) throws -> (String, String) {
        let imagePath = try write(
            "images-idx3-ubyte",
            images ?? Self.imageFile(count: 3, rows: 2, columns: 3, pixels: Self.pixels)
        )
        let labelPath = try write("labels-idx1-ubyte", labels ?? Self.labelFile(Self.labels))
        return (imagePath, labelPath)
    }

    private func loadError(images: [UInt8]? = nil, labels: [UInt8]? = nil) throws -> (CoreError, String, String) {
        let (imagePath, labelPath) = try writePair(images: images, labels: labels)
        let error = #expect(throws: CoreError.self) { try Dataset.loadIDX(images: imagePath, labels: labelPath) }
        return (try #require(error), imagePath, labelPath)
    }

    @Test func readsPixelsAndLabels() throws {
        defer { cleanUp() }
        let (imagePath, labelPath) = try writePair()
        let data = try Dataset.loadIDX(images: imagePath, labels: labelPath)
        #expect(data.count == 3)
        #expect(data.featureCount == 6)
        #expect(data.labels == [7, 0, 9])
        #expect(data.features == Self.pixels.map { Float($0) })
        #expect(data.features.max() == 255)
        #expect(data.source == imagePath)
    }

    @Test func refusesABadImageMagic() throws {
        defer { cleanUp() }
        let (error, imagePath, _) = try loadError(
            images: Self.imageFile(count: 3, rows: 2, columns: 3, pixels: Self.pixels, magic: 0x1234_5678)
        )
        #expect(error.code == .invalidData)
        #expect(error.message == "\(imagePath): not an IDX image file: magic number 0x12345678, expected 0x00000803")
    }

    @Test func suggestsSwappedFiles() throws {
        defer { cleanUp() }
        let (imagePath, labelPath) = try writePair()
        let error = #expect(throws: CoreError.self) { try Dataset.loadIDX(images: labelPath, labels: imagePath) }
        #expect(error?.message.hasPrefix("\(labelPath): not an IDX image file: magic number 0x00000801") == true)
        #expect(error?.message.contains("swapped") == true)
    }

    @Test func refusesABadLabelMagic() throws {
        defer { cleanUp() }
        let (error, _, labelPath) = try loadError(labels: Self.labelFile(Self.labels, magic: 0x0802))
        #expect(error.message.hasPrefix("\(labelPath): not an IDX label file: magic number 0x00000802"))
    }

    @Test func refusesTruncatedImages() throws {
        defer { cleanUp() }
        let (error, imagePath, _) = try loadError(
            images: Self.imageFile(count: 3, rows: 2, columns: 3, pixels: Array(Self.pixels.dropLast()))
        )
        #expect(error.code == .invalidData)
        #expect(
            error.message
                == "\(imagePath): truncated: the header says 3 images of 2x3 (34 bytes) but the file has 33 bytes"
        )
    }

    @Test func refusesTruncatedLabelsAndHeaders() throws {
        defer { cleanUp() }
        let labels = Self.bigEndian(0x0801) + Self.bigEndian(3) + [7, 0]
        let (error, _, labelPath) = try loadError(labels: labels)
        #expect(error.message.hasPrefix("\(labelPath): truncated"))

        let (short, imagePath, _) = try loadError(images: [0, 0, 8, 3, 0, 0])
        #expect(short.message.hasPrefix("\(imagePath): too short for an IDX image file (6 bytes"))
    }

    @Test func refusesTrailingBytes() throws {
        defer { cleanUp() }
        let (error, imagePath, _) = try loadError(
            images: Self.imageFile(count: 3, rows: 2, columns: 3, pixels: Self.pixels + [1, 2])
        )
        #expect(error.message.hasPrefix("\(imagePath): the header says 3 images"))
        #expect(error.message.hasSuffix("2 extra bytes at the end"))
    }

    @Test func refusesMismatchedCounts() throws {
        defer { cleanUp() }
        let (error, imagePath, labelPath) = try loadError(labels: Self.labelFile([1, 2]))
        #expect(error.message.hasPrefix("\(imagePath) holds 3 images but \(labelPath) holds 2 labels"))
    }

    @Test func refusesGzipAndEmptyFiles() throws {
        defer { cleanUp() }
        let (gzip, imagePath, _) = try loadError(images: [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(gzip.message.hasPrefix("\(imagePath): the file is gzip-compressed"))

        let (empty, _, _) = try loadError(
            images: Self.imageFile(count: 0, rows: 28, columns: 28, pixels: []),
            labels: Self.labelFile([])
        )
        #expect(empty.message.hasSuffix("holds no images"))

        let (zeroSize, _, _) = try loadError(images: Self.imageFile(count: 3, rows: 0, columns: 3, pixels: []))
        #expect(zeroSize.message.contains("rows and columns must be positive"))
    }

    @Test func reportsMissingFiles() throws {
        defer { cleanUp() }
        let (imagePath, _) = try writePair()
        let missing = directory + "/absent-labels"
        let error = #expect(throws: CoreError.self) { try Dataset.loadIDX(images: imagePath, labels: missing) }
        #expect(error?.code == .fileNotFound)
        #expect(error?.message == "\(missing): no such file")
    }
}
