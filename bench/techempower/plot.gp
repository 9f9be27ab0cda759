# bench/techempower/plot.gp: the PNG of one bench/techempower.sh run, from the data report.py wrote.
#   gnuplot -e "dat='bench/.work/techempower/plot'; out='bench/results/techempower-STAMP.png'" bench/techempower/plot.gp
# Left: requests/s per test and server (median, whiskers min-max; log scale: plaintext is ~50x db).
# Right: what one request of db and fortunes costs in CPU, split server / PostgreSQL / client (empty
# when the run had neither).
load dat.'/vars.gp'

set terminal pngcairo size 1600,720 font "sans,10" noenhanced
set output out
set datafile missing "-"
set multiplot layout 1, 2 title "TechEmpower tests against PostgreSQL, 2 shared cores (".run_title.")"
set grid ytics mytics lc rgb "#dddddd"
set key below maxrows 4 noautotitle
set style fill solid 0.85 border -1
colors = "#1f77b4 #2ca02c #17becf #9467bd #d62728 #ff7f0e #8c564b #e377c2 #7f7f7f #bcbd22"

set title "Requests/s: median, whiskers min-max over the rounds"
set style data histogram
set style histogram errorbars gap 2 lw 1
set logscale y
set ylabel "requests/s (log scale)"
plot for [i=0:n_servers-1] dat.'/throughput.dat' using (column(2+3*i)):(column(3+3*i)):(column(4+3*i)):xtic(1) lc rgb word(colors, i+1) title columnhead(2+3*i)

unset logscale y
set yrange [0:*]
set title "CPU time per request (median over the rounds)"
set style histogram rowstacked
set boxwidth 0.7
set ylabel "CPU µs per request (user + system)"
set xtics rotate by -35 nomirror
if (n_cpu_tests > 0) { # a run without db or fortunes has nothing to show here
  plot for [i=2:4] dat.'/cpu.dat' using i:xtic(1) lc rgb word("#1f77b4 #ff7f0e #7f7f7f", i-1) title columnhead(i)
}
unset multiplot
