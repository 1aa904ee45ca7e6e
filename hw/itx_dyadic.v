// Combinational dyadic multiplier-shift y = round(x * m / 2^sh) with a named rounding (itx_round codes), one
// rounding: exactly golden round_div(x * m, 2^sh). Both stages of itx_requant: Eq. 8 scale matching and the
// dyadic / pow2 (m = 1) Eq. 10 re-scaling.
module itx_dyadic #(
    parameter XW = 32,   // signed input width
    parameter MW = 31,   // unsigned multiplier width
    parameter SW = 6     // shift width: sh in 0 .. 2^SW - 1
) (
    input  wire [XW-1:0]    x,      // signed
    input  wire [MW-1:0]    m,      // unsigned
    input  wire [SW-1:0]    sh,
    input  wire [1:0]       rnd,
    output wire [XW+MW+1:0] y       // signed
);
    wire signed [XW+MW:0] p = $signed(x) * $signed({1'b0, m});
    itx_round_shift #(.XW(XW + MW + 1), .SW(SW)) u_shift (.x(p), .sh(sh), .rnd(rnd), .y(y));
endmodule
