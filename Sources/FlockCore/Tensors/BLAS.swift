internal import COpenBLAS

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

/// How many threads the matrix kernels (OpenBLAS) may use in this process.
public enum ComputeThreads {
    /// The current thread count of the matrix kernels.
    public static var count: Int { Int(openblas_get_num_threads()) }

    /// Sets the thread count of the matrix kernels (at least 1).
    public static func set(_ count: Int) {
        openblas_set_num_threads(Int32(max(1, count)))
    }
}
