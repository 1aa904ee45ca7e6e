// golden.config.to_accumulator of one exact signed W-bit value (W >= ACC_BITS): SATURATE = 0 keeps the low
// ACC_BITS bits (two's complement wrap mod 2^ACC_BITS), SATURATE = 1 clips to [-2^(ACC_BITS-1), 2^(ACC_BITS-1) - 1].
// ovf: x was outside that range (it wrapped or saturated).
module itx_to_acc #(
    parameter W        = 33,
    parameter ACC_BITS = 32,
    parameter SATURATE = 0
) (
    input  wire [W-1:0]        x,      // signed
    output wire [ACC_BITS-1:0] y,      // signed
    output wire                ovf
);
    wire [W-ACC_BITS:0] top = x[W-1:ACC_BITS-1];   // a sign extension iff x fits
    assign ovf = !(&top || !(|top));
    assign y   = SATURATE && ovf ? {x[W-1], {(ACC_BITS-1){!x[W-1]}}} : x[ACC_BITS-1:0];
endmodule
