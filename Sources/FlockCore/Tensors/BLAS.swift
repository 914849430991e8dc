internal import COpenBLAS
import Synchronization

/// The one Swift wrapper over OpenBLAS. Everything else in FlockCore calls these functions, never `cblas_*`.
enum BLAS {
    /// C = alpha * op(A) * op(B) + beta * C, all row-major.
    ///
    /// - Parameters:
    ///   - transA: use A transposed (A is then k x m in memory).
    ///   - transB: use B transposed (B is then n x k in memory).
    /// - Complexity: O(m * n * k).
    @inline(__always)
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y += alpha * x.
    @inline(__always)
    static func axpy(count: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(Int32(count), alpha, x, 1, y, 1)
    }

    /// Euclidean norm of x.
    @inline(__always)
    static func norm(count: Int, x: UnsafePointer<Float>) -> Float {
        cblas_snrm2(Int32(count), x, 1)
    }

    /// x *= alpha.
    @inline(__always)
    static func scale(count: Int, alpha: Float, x: UnsafeMutablePointer<Float>) {
        cblas_sscal(Int32(count), alpha, x, 1)
    }
}

/// The default thread count of new models in this process (default 1); see ``Model/threads``.
///
/// Flock owns the parallelism: a model splits a batch's rows over this many threads (data parallelism),
/// and OpenBLAS runs single-threaded inside each. Splitting rows beats OpenBLAS's own threading on the
/// small, cache-sized products of the training step, and keeps results deterministic per thread count.
public enum ComputeThreads {
    private static let value = Atomic<Int>(configure())

    private static func configure() -> Int {
        openblas_set_num_threads(1)
        return 1
    }

    /// The current thread count.
    public static var count: Int { value.load(ordering: .relaxed) }

    /// Sets the thread count (at least 1).
    public static func set(_ count: Int) {
        value.store(max(1, count), ordering: .relaxed)
    }
}
