// Simulation-only fast path: streams one GEMM's $readmemh-preloaded beats (itx_tb_source) through
// itx_gemm_ctrl with seeded random stalls on both handshakes (generated here, no per-cycle Python), and
// writes C row-major as hex.
// Plusargs: +a=FILE +b=FILE (beat files, see itx_tb_source) +c=FILE +m=M +k=K +n=N [+seed=S] [+stall_in=PCT]
//           [+stall_out=PCT] [+max_cycles=C] [+dump=FILE.fst] (run vvp with -fst for FST waveforms)
// Prints "ITX_STATS cycles=... beats=..." on success, "ITX_ERROR ..." on failure.
`timescale 1ns / 1ps
module itx_tb_mem #(
    parameter ROWS     = 8,
    parameter COLS     = 8,
    parameter IN_BITS  = 8,
    parameter ACC_BITS = 32,
    parameter SATURATE = 0,
    parameter DIM_BITS = 16,
    parameter AMAX     = 1024,    // beat words of A and B (itx_tb_source), elements of C
    parameter BMAX     = 1024,
    parameter CMAX     = 1024
) ();
    reg clk = 1'b0;
    always #5 clk = ~clk;
    reg rst = 1'b1;

    reg [ACC_BITS-1:0] cmem [0:CMAX-1];
    reg [8*4096-1:0]   cfile, dumpfile;
    integer m, k, n, seed, stall_in, stall_out, max_cycles, fd, i, c;

    reg                      hold = 1'b0, out_ready = 1'b0;
    wire                     in_valid, in_ready, out_valid, out_last;
    wire [ROWS*IN_BITS-1:0]  in_a;
    wire [COLS*IN_BITS-1:0]  in_b;
    wire [COLS*ACC_BITS-1:0] out_data;

    itx_tb_source #(.ROWS(ROWS), .COLS(COLS), .IN_BITS(IN_BITS), .AMAX(AMAX), .BMAX(BMAX)) src (
        .clk(clk), .rst(rst), .hold(hold), .in_ready(in_ready), .in_valid(in_valid), .in_a(in_a), .in_b(in_b));

    itx_gemm_ctrl #(.ROWS(ROWS), .COLS(COLS), .IN_BITS(IN_BITS), .ACC_BITS(ACC_BITS),
                    .SATURATE(SATURATE), .DIM_BITS(DIM_BITS)) dut (
        .clk(clk), .rst(rst), .cfg_m(m[DIM_BITS-1:0]), .cfg_k(k[DIM_BITS-1:0]), .cfg_n(n[DIM_BITS-1:0]),
        .in_valid(in_valid), .in_ready(in_ready), .in_a(in_a), .in_b(in_b),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data), .out_last(out_last)
    );

    initial begin
        if (!($value$plusargs("c=%s", cfile) && $value$plusargs("m=%d", m) && $value$plusargs("k=%d", k)
              && $value$plusargs("n=%d", n))) begin
            $display("ITX_ERROR missing plusarg (+a +b +c +m +k +n required)");
            $finish;
        end
        if ($value$plusargs("dump=%s", dumpfile)) begin
            $dumpfile(dumpfile);
            $dumpvars(0, itx_tb_mem);
        end
        if (!$value$plusargs("seed=%d", seed)) seed = 1;
        if (!$value$plusargs("stall_in=%d", stall_in)) stall_in = 0;
        if (!$value$plusargs("stall_out=%d", stall_out)) stall_out = 0;
        if (!$value$plusargs("max_cycles=%d", max_cycles)) max_cycles = 1000000000;
        if (m * n > CMAX) begin
            $display("ITX_ERROR GEMM %0dx%0dx%0d exceeds the C memory built in (CMAX)", m, k, n);
            $finish;
        end
        repeat (2) @(posedge clk);
        rst <= 1'b0;
    end

    integer cycles = 0, beats = 0, row;
    // Output state: next row beat is row orow of tile (otm, otn).
    integer otm = 0, otn = 0, orow = 0;

    function chance(input integer pct);  // true with probability (100 - pct) %
        chance = ($unsigned($random(seed)) % 100) >= pct;
    endfunction

    always @(posedge clk) begin
        if (!rst) begin
            cycles = cycles + 1;
            if (cycles > max_cycles) begin
                $display("ITX_ERROR timeout after %0d cycles (%0d beats sent)", cycles, beats);
                $finish;
            end
            if (in_valid && in_ready) beats = beats + 1;
            if (out_valid && out_ready) begin
                row = otm * ROWS + orow;
                for (c = 0; c < COLS && otn * COLS + c < n; c = c + 1)
                    cmem[row * n + otn * COLS + c] = out_data[c*ACC_BITS +: ACC_BITS];
                orow = orow + 1;
                if (orow == ROWS || row + 1 == m) begin
                    orow = 0;
                    otn = otn + 1;
                    if (otn * COLS >= n) begin
                        otn = 0;
                        otm = otm + 1;
                    end
                end
                if (out_last != (otm * ROWS >= m)) begin
                    $display("ITX_ERROR out_last=%0d at row %0d of tile (%0d, %0d)", out_last, orow, otm, otn);
                    $finish;
                end
                if (out_last) begin
                    fd = $fopen(cfile, "w");
                    for (i = 0; i < m * n; i = i + 1) $fdisplay(fd, "%h", cmem[i]);
                    $fclose(fd);
                    $display("ITX_STATS cycles=%0d beats=%0d", cycles, beats);
                    $finish;
                end
            end
            // no $random call per cycle without stalls
            if (stall_in > 0) hold <= !chance(stall_in);
            if (stall_out > 0) out_ready <= chance(stall_out);
            else out_ready <= 1'b1;
        end
    end
endmodule
