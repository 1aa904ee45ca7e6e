// Combinational round(x / 2^sh) with a named rounding (itx_round): the power-of-two re-scaling of Eq. 10
// ("pow2" mode) and the shift of the dyadic multiplier-shift of Eq. 8, exactly golden round_div(x, 2^sh).
// The remainder logic runs W bits wide, so shifts up to 2^SW - 1 (even >= XW) round correctly.
module itx_round_shift #(
    parameter XW = 64,   // signed input width
    parameter SW = 6     // shift width: sh in 0 .. 2^SW - 1
) (
    input  wire [XW-1:0] x,      // signed
    input  wire [SW-1:0] sh,
    input  wire [1:0]    rnd,
    output wire [XW:0]   y       // signed
);
    localparam W = (XW > (1 << SW) ? XW : (1 << SW)) + 1;
    wire         neg  = x[XW-1];
    wire [XW-1:0] ax  = neg ? -x : x;                 // |x| (2^(XW-1) fits unsigned)
    wire [W-1:0] mag  = {{(W-XW){1'b0}}, ax};
    wire [W-1:0] r    = mag & ~({W{1'b1}} << sh);
    wire [W-1:0] half = sh == 0 ? {W{1'b0}} : {{(W-1){1'b0}}, 1'b1} << (sh - 1'b1);
    itx_round #(.QW(XW)) u_round (.q(ax >> sh), .neg(neg), .gt(sh != 0 && r > half),
                                  .eq(sh != 0 && r == half), .nz(r != 0), .rnd(rnd), .y(y));
endmodule
