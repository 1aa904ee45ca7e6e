// Named rounding of a signed quotient n / d from its magnitude parts (golden/rounding.py round_div):
// q = |n| div d, and how the remainder r compares with d / 2. RND: 0 half_away, 1 half_even, 2 floor
// (the order of golden.rounding.ROUNDINGS), 3 half_up (ties toward +infinity: TFLite's single rounding and the
// first rounding of gemmlowp's SRDHM). Result = sign(n) * (q + up); floor on negatives is -(q + (r != 0)).
module itx_round #(
    parameter QW = 64   // quotient magnitude width
) (
    input  wire [QW-1:0]   q,
    input  wire            neg,   // n < 0
    input  wire            gt,    // 2r > d
    input  wire            eq,    // 2r == d (a tie)
    input  wire            nz,    // r != 0
    input  wire [1:0]      rnd,
    output wire [QW:0]     y      // signed, two's complement
);
    wire         up  = rnd == 2'd0 ? (gt | eq) : rnd == 2'd1 ? (gt | (eq & q[0])) :
                       rnd == 2'd2 ? (neg & nz) : (gt | (eq & !neg));
    wire [QW:0]  mag = {1'b0, q} + {{QW{1'b0}}, up};
    assign y = neg ? -mag : mag;
endmodule
