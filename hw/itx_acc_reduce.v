// The one wrap/saturate reduction of the data path (golden.config.to_accumulator): an exact signed W-bit value as
// an ACC_BITS accumulator holds it. SATURATE = 0 wraps (two's complement, mod 2^ACC_BITS), 1 clips to
// [-2^(ACC_BITS-1), 2^(ACC_BITS-1) - 1]. hit: the value was out of range (a wrap or saturation happened).
// W <= ACC_BITS sign-extends (never a hit).
module itx_acc_reduce #(
    parameter W        = 40,
    parameter ACC_BITS = 32,
    parameter SATURATE = 0
) (
    input  wire [W-1:0]        x,     // signed
    output wire [ACC_BITS-1:0] y,     // signed
    output wire                hit
);
    generate
        if (W <= ACC_BITS) begin : g_fits
            assign y   = {{(ACC_BITS-W+1){x[W-1]}}, x[W-2:0]};
            assign hit = 1'b0;
        end else begin : g_reduce
            // in range iff the bits above the accumulator's sign bit all equal it
            wire in_range = &x[W-1:ACC_BITS-1] | ~|x[W-1:ACC_BITS-1];
            wire [ACC_BITS-1:0] clip = x[W-1] ? {1'b1, {(ACC_BITS-1){1'b0}}} : {1'b0, {(ACC_BITS-1){1'b1}}};
            assign hit = !in_range;
            assign y   = (SATURATE != 0 && !in_range) ? clip : x[ACC_BITS-1:0];
        end
    endgenerate
endmodule
