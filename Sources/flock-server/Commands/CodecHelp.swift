import ArgumentParser

/// Help for the codec options that `serve` and `simulate` share.
enum CodecHelp {
    /// `--codec`.
    static var codec: ArgumentHelp {
        ArgumentHelp(
            "Update codec: f32 (no compression; the default without secure aggregation), fixed32 (the default with it), "
                + "q1|q2|q4|q8|q16 (stochastic quantization, a range per block of 1,024 values), rot+q{b} (after a randomized "
                + "Hadamard rotation), sketch:RxC[,q{b}][,k=K] (a count sketch, FetchSGD), or topk:F[,momentum=M][,warmup=W]"
                + "[,values=sign] (without secure aggregation); +deflate adds the lossless stage (without secure aggregation).",
            valueName: "ID")
    }

    /// `--download-codec`.
    static var downloadCodec: ArgumentHelp {
        ArgumentHelp(
            "How the global model travels to the edges: f32 (the model file), or q4|q8|q16|rot+q{b} (edges train from the "
                + "decoded model), each optionally +deflate. [default: f32]",
            valueName: "ID")
    }
}
