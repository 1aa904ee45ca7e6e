// Simulation-only input stream of one GEMM into itx_gemm_ctrl, from $readmemh-preloaded beat files.
// +a=FILE: ceil(M/ROWS)*K words of ROWS lanes, word tm*K + k = A[tm*ROWS + r][k] in lane r (lane 0 in the low
// bits, padding rows zero); +b=FILE: ceil(N/COLS)*K words of COLS lanes, word tn*K + k = B[k][tn*COLS + c]
// (sim.runner.write_beats writes both). +m +k +n: the shape. Beat k of tile (tm, tn) is (a[tm*K + k],
// b[tn*K + k]): whole words per cycle, so the testbench costs Icarus a few loads per beat.
// hold = 1 offers no new beat this cycle (random input stalls); an offered beat stays until accepted.
`timescale 1ns / 1ps
module itx_tb_source #(
    parameter ROWS    = 8,
    parameter COLS    = 8,
    parameter IN_BITS = 8,
    parameter AMAX    = 1024,   // beat words
    parameter BMAX    = 1024
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    hold,
    input  wire                    in_ready,
    output reg                     in_valid,
    output reg [ROWS*IN_BITS-1:0]  in_a,
    output reg [COLS*IN_BITS-1:0]  in_b
);
    reg [ROWS*IN_BITS-1:0] abeat [0:AMAX-1];
    reg [COLS*IN_BITS-1:0] bbeat [0:BMAX-1];
    reg [8*4096-1:0]       afile, bfile;
    integer m, k, n, nt, left, kk, tn, ai, bi;

    initial begin
        in_valid = 1'b0;
        if (!($value$plusargs("a=%s", afile) && $value$plusargs("b=%s", bfile) && $value$plusargs("m=%d", m)
              && $value$plusargs("k=%d", k) && $value$plusargs("n=%d", n))) begin
            $display("ITX_ERROR missing plusarg (+a +b +m +k +n required)");
            $finish;
        end
        nt = (n + COLS - 1) / COLS;
        left = (m + ROWS - 1) / ROWS * nt * k;  // beats to send
        if (left / nt > AMAX || nt * k > BMAX) begin
            $display("ITX_ERROR GEMM %0dx%0dx%0d exceeds the beat memories built in (AMAX/BMAX)", m, k, n);
            $finish;
        end
        $readmemh(afile, abeat, 0, left / nt - 1);
        $readmemh(bfile, bbeat, 0, nt * k - 1);
        kk = 0;
        tn = 0;
        ai = 0;
        bi = 0;
    end

    always @(posedge clk) begin
        if (!rst) begin
            if (in_valid && in_ready) begin
                left = left - 1;
                if (kk < k - 1) begin
                    kk = kk + 1;
                    ai = ai + 1;
                    bi = bi + 1;
                end else if (tn < nt - 1) begin  // next tile along N: the same A rows again
                    kk = 0;
                    tn = tn + 1;
                    ai = ai - (k - 1);
                    bi = bi + 1;
                end else begin                   // next row of tiles
                    kk = 0;
                    tn = 0;
                    ai = ai + 1;
                    bi = 0;
                end
            end
            if (!in_valid || in_ready) begin
                in_valid <= left > 0 && !hold;
                in_a <= abeat[ai];
                in_b <= bbeat[bi];
            end
        end
    end
endmodule
