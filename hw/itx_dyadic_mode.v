// One multiplier-shift stage with its per-beat arithmetic mode (sim.requant.STAGE_MODES, itx_requant's
// in_mmode / in_rmode codes): 0 "dyadic", one rounding by rnd; 1 "tflite", gemmlowp's double rounding; 2
// "tflite_single", one rounding ties toward +infinity. y = itx_dyadic(x, m, sh) in that mode.
module itx_dyadic_mode #(
    parameter XW = 32,   // signed input width
    parameter MW = 31,   // unsigned multiplier width
    parameter SW = 6     // shift width
) (
    input  wire [XW-1:0]    x,      // signed
    input  wire [MW-1:0]    m,      // unsigned
    input  wire [SW-1:0]    sh,
    input  wire [1:0]       rnd,    // itx_round code, used by mode 0
    input  wire [1:0]       mode,
    output wire [XW+MW+1:0] y       // signed
);
    itx_dyadic #(.XW(XW), .MW(MW), .SW(SW)) u_dyadic (
        .x(x), .m(m), .sh(sh), .rnd(mode == 2'd2 ? 2'd3 : mode == 2'd1 ? 2'd0 : rnd), .dbl(mode == 2'd1), .y(y));
endmodule
